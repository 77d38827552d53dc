// Pairs each service-side call with a device-side call. The attached agent is asked to dial
// once per connection (over its Attach call); its Accept call for that connection id is spliced
// to the waiting Connect call. This file owns the stream's limits: connection count, dial and
// attach waits, idle connections and the stream's lifetime. Every call holds a place toward the
// connection limit from its arrival: waiting for an agent, waiting for the dial, or spliced.
import { status } from "@grpc/grpc-js";
import { type ErrorCode, type PeerCode, peerCode } from "../runtime/error-codes.ts";
import { errorDetail } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { printable } from "../runtime/printable.ts";
import { TokenBucket } from "./bandwidth.ts";
import type { AgentMessage, AttachCall, ByteCall as FrameCall } from "./calls.ts";
import type { RelayMetrics } from "./metrics.ts";
import type { RequestedService } from "./service-choice.ts";
import { type CloseReason, type Direction, Splice } from "./splice.ts";
import { type StreamConfig, streamServices } from "./stream-config.ts";

export interface RelayLimits {
  maxConnections: number;
  /** A tunnelled connection with no bytes either way for this long is reset; 0 = never. */
  idleTimeoutMs: number;
  /** How long a new connection waits for the agent to dial its target. */
  dialTimeoutMs: number;
  /** How long a new connection waits for an agent to attach, when none is. */
  attachWaitMs: number;
  maxFrameBytes: number;
  /** Bytes per second each way for the whole stream; 0 = unlimited. */
  bandwidthBytesPerSecond: number;
}

/** A Frame's tag and length in front of its payload: the message may exceed the payload limit by this. */
const frameOverheadBytes = 64;

interface Pending {
  source: FrameCall;
  /** The device identity that was asked to dial: only it may accept the connection. */
  identity: string;
  timer: NodeJS.Timeout;
  startedAt: bigint;
}

interface Failure {
  grpcCode: status;
  code: PeerCode;
  message: string;
}

/**
 * Open: carries connections. Draining: refuses new ones while open ones finish (shutdown).
 * Ended: the stream is over, refuses everything; final, whatever is asked later.
 */
type Phase = { name: "open" } | { name: "draining"; refusal: Failure } | { name: "ended"; refusal: Failure };

/** A connection's service and port, as the agent is asked to dial them (port 0: the service's own). */
interface Choice {
  service: string;
  port: number;
}

/** What a call that names no service asks for (clients that predate several services per stream). */
const unnamed: RequestedService = { ok: true, port: 0 };

function fail(call: FrameCall | AttachCall, f: Failure): void {
  call.fail(f.grpcCode, errorDetail(f.code, f.message));
}

export class Pairing {
  private readonly config: StreamConfig;
  private readonly services: string[];
  private limits: RelayLimits;
  private readonly metrics: RelayMetrics;
  private readonly log: Logger;
  private phase: Phase = { name: "open" };
  private agent: AttachCall | undefined;
  /** Who the attached agent proved to be (relay/server.ts): a certificate's Device, or "token". */
  private agentIdentity = "";
  private refusal: Failure | undefined;
  private nextId = 1;
  /** Calls waiting for an agent to attach: each one's wake-up, called on an attach or refusal. */
  private readonly waiting = new Set<() => void>();
  /** Calls the agent was asked to dial for, by connection id. */
  private readonly pending = new Map<number, Pending>();
  private readonly active = new Map<number, Splice>();
  private buckets: Record<Direction, TokenBucket> | undefined;
  /** The byte counter's series, looked up once: a labelled inc() hashes its labels, once per DATA chunk. */
  private readonly bytes: Record<Direction, { inc(n: number): void }>;
  /** This stream's own byte counts (its usage report): the metrics sum every stream of a pool. */
  readonly bytesMoved: Record<Direction, number> = { to_device: 0, from_device: 0 };

  constructor(config: StreamConfig, limits: RelayLimits, metrics: RelayMetrics, log: Logger) {
    this.config = config;
    this.services = streamServices(config);
    this.limits = limits;
    this.metrics = metrics;
    this.bytes = {
      to_device: metrics.bytes.labels({ direction: "to_device" }),
      from_device: metrics.bytes.labels({ direction: "from_device" }),
    };
    this.log = log;
    this.setLimits(limits);
  }

  /** New limits (a changed relay.json): open connections keep running under them; none is dropped. */
  setLimits(limits: RelayLimits): void {
    const bw = limits.bandwidthBytesPerSecond;
    if (!this.buckets || bw !== this.limits.bandwidthBytesPerSecond) {
      this.buckets = bw > 0 ? { to_device: new TokenBucket(bw), from_device: new TokenBucket(bw) } : undefined;
    }
    this.limits = limits;
  }

  get connectionCount(): number {
    return this.active.size;
  }

  get agentAttached(): boolean {
    return this.agent !== undefined;
  }

  attach(call: AttachCall, identity: string): void {
    if (this.phase.name === "ended") {
      fail(call, this.phase.refusal);
      return;
    }
    if (this.occupiedByOther(call, identity)) return;
    call.write({
      streamInfo: {
        stream: this.config.stream,
        service: this.services[0],
        services: this.services,
        maxFrameBytes: this.limits.maxFrameBytes,
      },
    });
    let attached = false;
    call.on("data", (msg: AgentMessage) => {
      if (msg.hello && !attached) {
        if (this.occupiedByOther(call, identity)) return;
        attached = true;
        if (this.agent)
          fail(this.agent, {
            grpcCode: status.ABORTED,
            code: "DS_SESSION_REPLACED",
            message: "a newer session of this device attached",
          });
        // The gauge counts attached devices: a pool's streams add up, a replaced session is one.
        if (!this.agent) this.metrics.destinationAttached.inc();
        this.agent = call;
        this.agentIdentity = identity;
        this.refusal = undefined;
        this.log.info("device attached", { agentVersion: msg.hello.agentVersion ?? "", peer: call.getPeer() });
        for (const wake of this.waiting) wake();
      } else if (msg.refusal) {
        const why = errorDetail(peerCode(msg.refusal.code, "DS_DEVICE_REFUSED"), printable(msg.refusal.message ?? ""));
        this.refusal = {
          grpcCode: status.FAILED_PRECONDITION,
          code: "DS_DEVICE_REFUSED",
          message: `the device refused ${this.services.length === 1 ? "service" : "services"} ${this.services.map((n) => `"${n}"`).join(", ")}: ${why}`,
        };
        this.log.warn("device refused the stream", { reason: msg.refusal.code, detail: why });
        for (const wake of this.waiting) wake();
        call.end();
      } else if (msg.dialResult) {
        this.dialFailed(
          Number(msg.dialResult.connectionId),
          msg.dialResult.errorCode ?? "",
          msg.dialResult.errorMessage ?? "",
        );
      }
    });
    const detach = () => {
      if (this.agent !== call) return;
      this.agent = undefined;
      this.metrics.destinationAttached.dec();
      this.log.info("device detached", { peer: call.getPeer() });
      for (const [id] of this.pending) {
        this.failPending(id, "dial_failed", {
          grpcCode: status.UNAVAILABLE,
          code: "DS_DEVICE_DETACHED",
          message: "the device's agent went away before it reached the target; try again",
        });
      }
    };
    for (const event of ["end", "cancelled", "close"]) call.on(event, detach);
    // Our half too: an agent that only half-closed would otherwise wait for a status forever.
    call.on("end", () => {
      if (!call.writableEnded) call.end();
    });
  }

  /**
   * A session may replace an earlier one of the same device (an agent that reconnects before the
   * relay noticed the old connection die), never one of another identity: refuses it if so.
   */
  private occupiedByOther(call: AttachCall, identity: string): boolean {
    if (!this.agent || this.agentIdentity === identity) return false;
    this.metrics.authFailures.inc({ role: "destination", reason: "DS_DEVICE_ALREADY_ATTACHED" });
    this.log.warn("attach refused: another device identity is attached", { peer: call.getPeer() });
    fail(call, {
      grpcCode: status.ALREADY_EXISTS,
      code: "DS_DEVICE_ALREADY_ATTACHED",
      message: `another device identity is attached to stream ${this.config.stream}; only the same device may replace its session`,
    });
    return true;
  }

  /**
   * `user`: who the operator said this is, when the caller presented Kubernetes credentials.
   * `requested`: the service its metadata names (relay/service-choice.ts); none, the stream's first.
   */
  connect(source: FrameCall, user?: string, requested: RequestedService = unnamed): void {
    if (this.phase.name !== "open") {
      this.refuse(source, this.phase.name === "ended" ? "expired" : "draining", this.phase.refusal);
      return;
    }
    // Before the device is asked anything: it dials only what the stream grants, and must not be
    // bothered by what it would refuse anyway.
    const choice = this.choose(requested);
    if ("grpcCode" in choice) {
      this.refuse(source, "no_such_service", choice);
      return;
    }
    if (this.waiting.size + this.pending.size + this.active.size >= this.limits.maxConnections) {
      this.refuse(source, "limit", {
        grpcCode: status.RESOURCE_EXHAUSTED,
        code: "DS_CONNECTION_LIMIT",
        message: `stream ${this.config.stream} already carries ${this.limits.maxConnections} connections, its limit; close some or raise the stream's maxConnections`,
      });
      return;
    }
    if (this.agent) {
      this.dial(source, choice, user);
      return;
    }
    if (this.refusal) {
      this.refuse(source, "refused", this.refusal);
      return;
    }
    // The agent may be reconnecting: give it a moment instead of failing at once.
    this.log.debug("connection waits for the device to attach", { waitMs: this.limits.attachWaitMs });
    const timer = setTimeout(() => done(false), this.limits.attachWaitMs);
    const done = (attachedNow: boolean) => {
      clearTimeout(timer);
      this.waiting.delete(wake);
      source.off("cancelled", cancelled);
      if (attachedNow && this.agent) {
        this.dial(source, choice, user);
        return;
      }
      if (this.refusal) {
        this.refuse(source, "refused", this.refusal);
        return;
      }
      this.refuse(source, "no_device", {
        grpcCode: status.UNAVAILABLE,
        code: "DS_DEVICE_NOT_ATTACHED",
        message: `no device is attached to stream ${this.config.stream}; check that the device's agent is running and can reach the relay`,
      });
    };
    const wake = () => done(true);
    const cancelled = () => {
      clearTimeout(timer);
      this.waiting.delete(wake);
      this.metrics.connections.inc({ result: "cancelled" });
    };
    this.waiting.add(wake);
    source.once("cancelled", cancelled);
  }

  private choose(requested: RequestedService): Choice | Failure {
    if (!requested.ok) {
      return { grpcCode: status.INVALID_ARGUMENT, code: "DS_PROTOCOL", message: requested.message };
    }
    const service = requested.service ?? this.services[0]!;
    if (!this.services.includes(service)) {
      return {
        grpcCode: status.FAILED_PRECONDITION,
        code: "DS_SERVICE_NOT_IN_STREAM",
        message: `stream ${this.config.stream} carries ${this.services.map((s) => `"${s}"`).join(", ")}, not "${service}"; name one of them, or open a stream for "${service}"`,
      };
    }
    return { service, port: requested.port };
  }

  private dial(source: FrameCall, choice: Choice, user?: string): void {
    const id = this.nextId++;
    // Who opened each connection, for the audit trail (the operator records the stream's last user).
    if (user !== undefined) this.log.info("connection opened", { connection: id, user, service: choice.service });
    const timer = setTimeout(
      () =>
        this.failPending(id, "dial_timeout", {
          grpcCode: status.DEADLINE_EXCEEDED,
          code: "DS_DIAL_TIMEOUT",
          message: `the device did not reach service "${choice.service}" within ${this.limits.dialTimeoutMs} ms`,
        }),
      this.limits.dialTimeoutMs,
    );
    this.pending.set(id, { source, identity: this.agentIdentity, timer, startedAt: process.hrtime.bigint() });
    source.once("cancelled", () => {
      const p = this.pending.get(id);
      if (!p) return;
      clearTimeout(p.timer);
      this.pending.delete(id);
      this.metrics.connections.inc({ result: "cancelled" });
    });
    this.agent!.write({ dial: { connectionId: id, service: choice.service, port: choice.port } });
  }

  private dialFailed(id: number, code: string, message: string): void {
    this.failPending(id, "dial_failed", {
      grpcCode: status.UNAVAILABLE,
      code: peerCode(code, "DS_DIAL_FAILED"),
      message: printable(message) || "the device could not reach its target",
    });
  }

  private failPending(id: number, result: string, f: Failure): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(id);
    this.refuse(p.source, result, f);
  }

  private refuse(source: FrameCall, result: string, f: Failure): void {
    this.metrics.connections.inc({ result });
    this.log.debug("connection refused", { result, reason: f.code });
    fail(source, f);
  }

  accept(destination: FrameCall, id: number, identity: string): void {
    const p = this.pending.get(id);
    if (!p || p.identity !== identity) {
      fail(destination, {
        grpcCode: status.NOT_FOUND,
        code: "DS_UNKNOWN_CONNECTION",
        message: `connection ${id} is not waiting for the device (it timed out or its client left)`,
      });
      return;
    }
    clearTimeout(p.timer);
    this.pending.delete(id);
    this.metrics.connections.inc({ result: "paired" });
    this.metrics.pairingSeconds.observe(Number(process.hrtime.bigint() - p.startedAt) / 1e9);
    this.metrics.connectionsActive.inc();
    // The response headers tell the client the device reached the target: a client that answers
    // its own caller (the SOCKS listener, client/socks-listener.ts) waits for them.
    p.source.sendMetadata();
    const splice = new Splice(
      id,
      p.source,
      destination,
      {
        onBytes: (direction, n) => {
          this.bytesMoved[direction] += n;
          this.bytes[direction].inc(n);
        },
        // Looked up per frame: a changed bandwidth limit holds for open connections too (it is the stream's).
        throttle: (direction, n) => this.buckets?.[direction].take(n) ?? 0,
        onClose: (reason: CloseReason, detail: string) => {
          this.active.delete(id);
          this.metrics.connectionsActive.dec();
          this.metrics.connectionsClosed.inc({ reason });
          this.log.debug("connection closed", { connection: id, reason, detail });
        },
      },
      this.limits.maxFrameBytes + frameOverheadBytes,
    );
    this.active.set(id, splice);
  }

  /** Resets connections that moved no bytes for the idle timeout. */
  sweepIdle(now = Date.now()): void {
    if (!this.limits.idleTimeoutMs) return;
    for (const splice of this.active.values()) {
      if (now - splice.lastActivity >= this.limits.idleTimeoutMs) {
        splice.reset(
          "idle_timeout",
          "DS_IDLE_TIMEOUT",
          `no bytes moved for ${this.limits.idleTimeoutMs} ms, the stream's idle timeout; connect again to continue`,
        );
      }
    }
  }

  /** Refuses new connections while open ones finish. */
  refuseNew(code: ErrorCode, message: string): void {
    if (this.phase.name === "ended") return;
    this.phase = { name: "draining", refusal: { grpcCode: status.UNAVAILABLE, code, message } };
  }

  /** The stream is over (lifetime, expiry, shutdown): reset everything and refuse what comes. */
  end(reason: CloseReason, code: ErrorCode, message: string): void {
    if (this.phase.name === "ended") return;
    const refusal = { grpcCode: status.FAILED_PRECONDITION, code, message };
    this.phase = { name: "ended", refusal };
    for (const splice of [...this.active.values()]) splice.reset(reason, code, message);
    for (const [id] of this.pending) this.failPending(id, "expired", refusal);
    for (const wake of this.waiting) wake();
    if (this.agent) fail(this.agent, refusal);
  }
}
