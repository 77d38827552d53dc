// The relay's gRPC server, on node:http2 (docs/adr/0002): authenticates each call for its role,
// then hands it to the pairing. Connect and Accept calls stay undecoded byte streams; Attach
// carries decoded control messages.
import type { Socket as NetSocket } from "node:net";
import type { TLSSocket } from "node:tls";
import { status } from "@grpc/grpc-js";
import { metadataKeys, relayServicePath } from "../proto/metadata.ts";
import { ConnectionGate, type ConnectionLimits } from "../runtime/connection-gate.ts";
import type { ErrorCode } from "../runtime/error-codes.ts";
import { errorDetail } from "../runtime/errors.ts";
import { flowControlWindowBytes, type KeepaliveOptions, sessionWindowBytes } from "../runtime/grpc-options.ts";
import type { Logger } from "../runtime/log.ts";
import { LogSampler } from "../runtime/log-sampler.ts";
import type { ServerTls } from "../runtime/tls.ts";
import type { Role } from "../transport/credentials.ts";
import { GrpcH2Server } from "../transport/grpc-h2-server.ts";
import type { H2ServerCall } from "../transport/h2-server-call.ts";
import { MessageServerCall } from "../transport/message-server-call.ts";
import { type AgentMessage, type RelayMessage, relayService } from "../transport/relay-service.ts";
import { CertificateRejections, DeviceAuthenticator } from "./device-auth.ts";
import type { RelayMetrics } from "./metrics.ts";
import { requestedService } from "./service-choice.ts";
import { ServerNameRefused, type SniContexts } from "./sni-contexts.ts";
import { authenticate, expiry } from "./stream-config.ts";
import type { StreamRegistry } from "./stream-registry.ts";
import type { StreamRuntime } from "./stream-runtime.ts";
import { presentsKubernetesToken } from "./user-access.ts";

/** An Attach message is a few fields; anything near this is not one. */
const maxAttachMessageBytes = 64 * 1024;
/** Request headers: tokens and a few keys. An OIDC token with many groups fits well within. */
const maxHeaderBytes = 32 * 1024;
/** DATA frames up to this size: fewer frames per tunnel frame than HTTP/2's 16 KiB default. */
const maxDataFrameBytes = 64 * 1024;

export interface RelayServerOptions {
  listen: string;
  /** One certificate (single-stream mode), or each stream's by the server name a client sends (pool mode). */
  tls: ServerTls | { sni: SniContexts };
  /** CA of device certificates; needed for a stream bound to a Device (relay.json `device`). */
  deviceCaPem?: string;
  keepalive: KeepaliveOptions;
  /** Who may hold a connection to the gRPC port, and for how long before authenticating. */
  limits: ConnectionLimits;
  /** The streams served, and which one a call reaches. */
  streams: StreamRegistry;
  metrics: RelayMetrics;
  log: Logger;
}

export interface RelayServer {
  port: number;
  /** Pool mode: the cap on connections follows the number of streams served. */
  setMaxConnections(n: number): void;
  forceClose(): void;
}

export async function startRelayServer(o: RelayServerOptions): Promise<RelayServer> {
  // Anyone who reaches the port can be refused, as often as they like: the metric counts every
  // refusal, the log gets a sample (one line per role and reason per 10 s).
  const refusals = new LogSampler({ intervalMs: 10_000 });
  const refuse = (call: H2ServerCall, role: Role, result: { code: ErrorCode; message: string }) => {
    o.metrics.authFailures.inc({ role, reason: result.code });
    const suppressed = refusals.take(`${role}/${result.code}`);
    if (suppressed !== undefined) {
      o.log.warn("call refused", {
        role,
        reason: result.code,
        peer: call.getPeer(),
        suppressed: suppressed || undefined,
      });
    }
    call.fail(status.UNAUTHENTICATED, errorDetail(result.code, result.message));
  };
  /**
   * The stream the call's TLS server name reaches; undefined and refused when none does (in pool
   * mode, one removed since the session's handshake).
   */
  const streamOf = (call: H2ServerCall, role: Role): StreamRuntime | undefined => {
    const stream = o.streams.route(call.serverName());
    if (stream) return stream;
    o.metrics.authFailures.inc({ role, reason: "DS_STREAM_MOVED" });
    call.fail(
      status.UNAVAILABLE,
      errorDetail(
        "DS_STREAM_MOVED",
        "this relay no longer serves the stream of this server name (it was deleted or moved to another relay); connect again",
      ),
    );
    return undefined;
  };
  const admit = (stream: StreamRuntime, call: H2ServerCall, role: Role): boolean => {
    const result = authenticate(stream.config, role, call.metadata);
    if (result.ok) gate.authenticated(call.getPeer());
    else refuse(call, role, result);
    return result.ok;
  };
  const devices = o.deviceCaPem ? new DeviceAuthenticator(o.deviceCaPem) : undefined;
  const rejections = new CertificateRejections();
  /**
   * The device side's identity, or undefined when refused: the Device its certificate names on a
   * stream bound to one, else the token path's one identity (whoever holds the token).
   */
  const admitDevice = async (stream: StreamRuntime, call: H2ServerCall): Promise<string | undefined> => {
    const config = stream.config;
    if (!config.device) return admit(stream, call, "destination") ? "token" : undefined;
    const result = devices
      ? await devices.check(config.device, call.verifiedPeerCertificate(), rejections.reason(call.getPeer()))
      : ({ ok: false, code: "DS_CONFIG", message: "the relay has no --device-ca" } as const);
    // Gone while its certificate was checked: pairing it would attach a call nobody holds.
    if (call.cancelled) return undefined;
    const timely = result.ok ? expiry(config) : result;
    if (!timely.ok) {
      refuse(call, "destination", timely);
      return undefined;
    }
    gate.authenticated(call.getPeer());
    return result.ok ? result.identity : undefined;
  };
  const attach = async (call: H2ServerCall) => {
    const stream = streamOf(call, "destination");
    const identity = stream && (await admitDevice(stream, call));
    if (!stream || !identity) return;
    const codec = {
      decode: (b: Uint8Array): AgentMessage =>
        relayService.attach.requestDeserialize(Buffer.from(b.buffer, b.byteOffset, b.length)),
      encode: (m: RelayMessage) => relayService.attach.responseSerialize(m),
    };
    stream.pairing.attach(new MessageServerCall(call, codec, maxAttachMessageBytes), identity);
  };
  const connect = (call: H2ServerCall) => {
    const stream = streamOf(call, "source");
    if (!stream) return;
    // The service the caller picked; the pairing checks it against the stream once admitted.
    const requested = requestedService(call.metadata);
    if (!presentsKubernetesToken(call.metadata)) {
      if (admit(stream, call, "source")) stream.pairing.connect(call, undefined, requested);
      return;
    }
    void stream.users.admit(call).then((user) => {
      if (user === undefined || call.cancelled) return;
      gate.authenticated(call.getPeer());
      stream.pairing.connect(call, user, requested);
    });
  };
  const accept = async (call: H2ServerCall) => {
    const stream = streamOf(call, "destination");
    const identity = stream && (await admitDevice(stream, call));
    if (!stream || !identity) return;
    const id = Number(call.metadata.get(metadataKeys.connectionId)[0]);
    if (!Number.isSafeInteger(id) || id <= 0) {
      call.fail(status.INVALID_ARGUMENT, errorDetail("DS_PROTOCOL", "Accept needs a connection id"));
      return;
    }
    stream.pairing.accept(call, id, identity);
  };
  const server = new GrpcH2Server({
    // Device certificates are asked for, not required: the service side comes without one.
    tls: {
      ...("sni" in o.tls ? { sniCallback: o.tls.sni.callback } : o.tls),
      ...(o.deviceCaPem ? { clientCaPem: o.deviceCaPem, clientCertOptional: true } : {}),
    },
    keepalive: o.keepalive,
    streamWindowBytes: flowControlWindowBytes,
    maxFrameBytes: maxDataFrameBytes,
    maxHeaderBytes,
    methods: {
      [`${relayServicePath}/Attach`]: (call) => void attach(call),
      [`${relayServicePath}/Connect`]: connect,
      [`${relayServicePath}/Accept`]: (call) => void accept(call),
    },
  });
  // Refusals are counted, and logged one line per reason per 10 s: a flood must not flood the log.
  const gateLog = new LogSampler({ intervalMs: 10_000 });
  const gate: ConnectionGate = await ConnectionGate.listen(server, {
    listen: o.listen,
    limits: o.limits,
    authenticatedWindowBytes: sessionWindowBytes,
    onRefused: (reason, source) => {
      o.metrics.grpcConnectionsRefused.inc({ reason });
      const suppressed = gateLog.take(reason);
      if (suppressed !== undefined) {
        o.log.warn("gRPC connection refused", { reason, source, suppressed: suppressed || undefined });
      }
    },
    onOpen: (n) => o.metrics.grpcConnections.set(n),
  });
  logHandshakeFailures(server, gate, o);
  server.http2.on("secureConnection", (s: TLSSocket) => rejections.watch(s));
  return {
    port: gate.port,
    setMaxConnections: (n) => gate.setMaxConnections(n),
    forceClose: () => {
      gate.close();
      server.forceClose();
    },
  };
}

/**
 * An HTTP/2 server drops a connection whose TLS handshake fails without a word. Count and log it, so that
 * the relay's side of a misconfigured client is visible: plaintext or HTTP/1 shows as "wrong
 * version number" or "http request", a client that does not trust the relay's certificate as
 * a hang-up. Debug only: anything on the network may knock on this port.
 */
function logHandshakeFailures(server: GrpcH2Server, gate: ConnectionGate, o: RelayServerOptions): void {
  // The peer's address, taken while the socket is open: after a hang-up Node no longer knows it.
  const peers = new WeakMap<object, string>();
  for (const h2 of [server.http2]) {
    h2.prependListener("connection", (raw: NetSocket) => peers.set(raw, `${raw.remoteAddress}:${raw.remotePort}`));
    h2.on("tlsClientError", (err: NodeJS.ErrnoException & { reason?: string }, socket: TLSSocket) => {
      const parent = (socket as TLSSocket & { _parent?: object })._parent;
      if (parent && gate.closedByGate(parent)) return; // counted and logged as the gate's handshake_timeout
      if (err instanceof ServerNameRefused) return; // counted as unknown_server_name by the SNI callback
      if ("sni" in o.tls && !socket.servername) {
        // Pool mode: without a server name no stream's certificate applies, and the handshake fails.
        o.metrics.grpcConnectionsRefused.inc({ reason: "missing_server_name" });
        return;
      }
      o.metrics.tlsHandshakeFailures.inc();
      const reason =
        err.code === "ECONNRESET"
          ? "the client hung up during the handshake (as one that does not trust the relay's certificate does)"
          : (err.reason ?? err.message);
      o.log.debug("TLS handshake failed", { peer: (parent && peers.get(parent)) ?? "unknown", reason });
    });
  }
}
