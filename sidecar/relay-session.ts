// The agent's session with one stream's relay: attach (outbound), accept or refuse the stream by
// the allow-list, dial the target for each connection the relay asks for, and reattach with
// jittered backoff whenever the session is lost.
import { type StatusObject, status } from "@grpc/grpc-js";
import { Backoff } from "../runtime/backoff.ts";
import { DeviceStreamsError, describeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { version } from "../runtime/version.ts";
import { callError, type DialledServer } from "../transport/call-error.ts";
import type { AttachCall, RelayClient } from "../transport/relay-client.ts";
import type { RelayMessage } from "../transport/relay-service.ts";
import { bridge } from "../transport/tcp-bridge.ts";
import type { AllowList } from "./allow-list.ts";
import type { AgentMetrics } from "./metrics.ts";
import { dialTarget } from "./target-dial.ts";

export type SessionState = "connecting" | "attached" | "refused" | "waiting" | "stopped";

export interface RelaySessionOptions {
  relay: RelayClient;
  /** How the relay's CA and TLS name were given (flags, or the hub's offer), for the advice in errors. */
  dialled: DialledServer;
  token: string;
  /**
   * The services the hub offered this stream for; unset in static mode, where the relay's
   * StreamInfo names them. Either way the session dials those services only.
   */
  services?: readonly string[];
  allowList: AllowList;
  dialTimeoutMs: number;
  metrics: AgentMetrics;
  log: Logger;
  backoff?: Backoff;
  /** Told of each attach and loss (the hub session reports them as the stream's state). */
  onState?: (state: SessionState, detail: string) => void;
}

export class RelaySession {
  state: SessionState = "connecting";
  /** Why the last attempt failed, for logs and readiness. */
  lastError = "";
  private call: AttachCall | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private maxFrameBytes = 256 * 1024;
  /** The services of the stream this session accepted: a Dial naming another is refused, allow-listed or not. */
  private services: ReadonlySet<string> = new Set();
  private readonly o: RelaySessionOptions;
  private readonly backoff: Backoff;

  constructor(o: RelaySessionOptions) {
    this.o = o;
    this.backoff = o.backoff ?? new Backoff({ initialMs: 500, maxMs: 30_000 });
  }

  start(): void {
    this.attach();
  }

  stop(): void {
    this.stopped = true;
    this.state = "stopped";
    clearTimeout(this.timer);
    this.call?.cancel();
  }

  private attach(): void {
    if (this.stopped) return;
    this.state = "connecting";
    const call = this.o.relay.attach(this.o.token, version);
    this.call = call;
    let attached = false;
    let refused: DeviceStreamsError | undefined;
    call.on("data", (msg: RelayMessage) => {
      if (msg.streamInfo) {
        // Relays that predate several services per stream name one, in `service`.
        const services = msg.streamInfo.services?.length ? msg.streamInfo.services : [msg.streamInfo.service ?? ""];
        this.maxFrameBytes = msg.streamInfo.maxFrameBytes || this.maxFrameBytes;
        refused = this.refusal(services);
        if (refused) {
          call.write({ refusal: { code: refused.code, message: refused.message } });
          call.end();
          return;
        }
        attached = true;
        this.services = new Set(services);
        this.state = "attached";
        this.lastError = "";
        this.backoff.connected();
        this.o.metrics.relaysAttached.inc();
        this.o.metrics.attachAttempts.inc({ result: "attached" });
        this.o.log.info("attached to relay", { stream: msg.streamInfo.stream ?? "", services: services.join(",") });
        this.o.onState?.("attached", "");
        call.write({ hello: { agentVersion: version, services: this.o.allowList.services } });
      } else if (msg.dial) {
        void this.dial(Number(msg.dial.connectionId), msg.dial.service ?? "", msg.dial.port ?? 0);
      }
    });
    let ended = false;
    const lost = (s: StatusObject) => {
      if (ended) return;
      ended = true;
      if (attached) this.o.metrics.relaysAttached.dec();
      if (this.stopped) return;
      const why = refused ?? (s.code !== status.OK ? callError(s, this.o.dialled) : undefined);
      this.o.metrics.attachAttempts.inc({ result: refused ? "refused" : attached ? "lost" : "failed" });
      this.lastError = why ? describeError(why) : "the relay ended the session";
      this.state = refused ? "refused" : "waiting";
      this.o.onState?.(this.state, this.lastError);
      const delay = this.backoff.next();
      const log = refused || !attached ? this.o.log.warn : this.o.log.info;
      log(attached ? "relay session lost; reattaching" : "cannot attach to relay; retrying", {
        reason: this.lastError,
        retryInMs: delay,
      });
      this.timer = setTimeout(() => this.attach(), delay);
    };
    // 'status' comes exactly once, whatever the ending; 'error' only duplicates it.
    call.on("status", lost);
    call.on("error", () => {});
  }

  /** Why this session will not serve a stream of `services`, or undefined when it will. */
  private refusal(services: readonly string[]): DeviceStreamsError | undefined {
    const shown = (names: readonly string[]) => names.map((n) => JSON.stringify(n.slice(0, 63))).join(", ");
    const offered = this.o.services;
    const notOffered = offered ? services.filter((s) => !offered.includes(s)) : [];
    if (notOffered.length) {
      return new DeviceStreamsError(
        "DS_WRONG_SERVICE",
        `this relay is for service ${shown(notOffered)} but the stream was offered for ${shown(offered!)}`,
      );
    }
    const missing = services.filter((s) => !this.o.allowList.lookup(s));
    if (missing.length) {
      return new DeviceStreamsError(
        "DS_SERVICE_NOT_ALLOWED",
        `service ${shown(missing)} is not in this device's allow-list (it has: ${this.o.allowList.services.join(", ") || "nothing"}); add it to the agent's --allow or config to serve this stream`,
      );
    }
    return undefined;
  }

  private async dial(id: number, service: string, port: number): Promise<void> {
    const { relay, token, allowList, metrics, log } = this.o;
    const report = (err: DeviceStreamsError, result: string) => {
      metrics.dials.inc({ result });
      log.warn("dial refused", { connection: id, reason: err.code, detail: err.message });
      this.call?.write({ dialResult: { connectionId: id, errorCode: err.code, errorMessage: err.message } });
    };
    if (!this.services.has(service)) {
      return report(
        new DeviceStreamsError(
          "DS_WRONG_SERVICE",
          `the relay asked for service ${JSON.stringify(service.slice(0, 63))} but this stream carries ${[...this.services].map((n) => `"${n}"`).join(", ") || "none"}`,
        ),
        "not_allowed",
      );
    }
    const resolved = allowList.resolve(service, port);
    if (!resolved.ok) return report(resolved.error, "not_allowed");
    const target = resolved.target;
    let socket: import("node:net").Socket;
    try {
      socket = await dialTarget(service, target, this.o.dialTimeoutMs);
    } catch (err) {
      const e = err as DeviceStreamsError;
      return report(
        e,
        e.code === "DS_TARGET_REFUSED" ? "refused" : e.code === "DS_TARGET_TIMEOUT" ? "timeout" : "unreachable",
      );
    }
    metrics.dials.inc({ result: "ok" });
    metrics.connectionsActive.inc();
    const call = relay.accept(token, id);
    bridge(socket, call, {
      maxFrameBytes: this.maxFrameBytes,
      side: "agent",
      relay: this.o.dialled,
      onBytes: (direction, n) => (direction === "in" ? metrics.bytesToTarget.inc(n) : metrics.bytesFromTarget.inc(n)),
      onEnd: (end) => {
        metrics.connectionsActive.dec();
        if (end.error)
          log.debug("connection ended with an error", { connection: id, reason: describeError(end.error) });
      },
    });
  }
}
