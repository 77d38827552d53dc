// What a launcher tells a relay: its flags and its config file (relay.json). The operator builds
// both from these types, so a renamed flag or field fails `tsc` there instead of in a running Pod.
import { type OptionArgs, type OptionSpecs, toArgv } from "../runtime/options.ts";
import type { Role } from "../transport/credentials.ts";

export const relayOptionSpecs = {
  listen: { kind: "address", description: "gRPC over TLS, for agents and clients", default: "0.0.0.0:8443" },
  "metrics-listen": {
    kind: "address",
    description: "`/metrics`, `/healthz`, `/readyz` (plain HTTP)",
    default: "0.0.0.0:9090",
  },
  config: {
    kind: "file",
    description:
      "`relay.json` of the one stream this relay serves: stream, services, SHA-256 of each role's token, optional `expiresAt`, `acceptSourceToken` and `limits`; re-read when it changes. Give this or `--streams-dir`",
  },
  "streams-dir": {
    kind: "file",
    placeholder: "dir",
    description:
      "pool mode: serve every stream in this folder, one subfolder per stream holding `relay.json` (with `serverNames`), `tls.crt` and `tls.key`; a call reaches the stream whose `serverNames` hold its TLS server name (SNI). Subfolders added, changed or removed apply without a restart; names starting with `.` are ignored (write there, then rename). Instead of `--config`, `--tls-cert` and `--tls-key`",
  },
  "tls-cert": { kind: "file", description: "serving certificate (PEM), with `--config`" },
  "tls-key": { kind: "file", description: "serving key (PEM), with `--config`", secret: true },
  "device-ca": {
    kind: "file",
    description:
      "CA bundle (PEM) that device certificates chain to; needed when `relay.json` binds the stream to a `device`",
  },
  "access-review-address": {
    kind: "address",
    description:
      "the operator's hub (host:port), which the relay asks whether a user's Kubernetes token may `connect` to the stream; unset: only the source token is accepted (static streams)",
  },
  "access-review-ca": {
    kind: "file",
    description:
      "CA bundle (PEM) the hub's certificate chains to; the relay presents `--tls-cert` as its client certificate",
  },
  "access-review-ttl": {
    kind: "duration",
    description: "how long one answer of the hub about one token is reused (at most 10s)",
    default: "10s",
  },
  "max-connections": { kind: "integer", min: 1, description: "concurrent tunnelled connections", default: "1000" },
  "bandwidth-limit": {
    kind: "integer",
    min: 0,
    description:
      "bytes per second each way for the whole stream (`0`: unlimited); senders are slowed, nothing is dropped",
    default: "0",
  },
  "idle-timeout": {
    kind: "duration",
    description: "reset a connection that moved no bytes for this long (`0`: never)",
    default: "1h",
  },
  "max-lifetime": { kind: "duration", description: "end the stream this long after start (`0`: never)", default: "0" },
  "dial-timeout": { kind: "duration", description: "how long the device may take to reach its target", default: "10s" },
  "attach-wait": {
    kind: "duration",
    description: "how long a new connection waits for a (re)attaching device",
    default: "5s",
  },
  "max-grpc-connections": {
    kind: "integer",
    min: 1,
    description:
      "TCP connections to the gRPC port at once, authenticated or not (more are refused); each client or agent needs one. In pool mode the cap grows by `--grpc-connections-per-stream` for each stream served",
    default: "256",
  },
  "grpc-connections-per-stream": {
    kind: "integer",
    min: 0,
    description:
      "pool mode: room added to `--max-grpc-connections` per stream served (an agent and a client need one each, a reconnecting one briefly two)",
    default: "4",
  },
  "max-grpc-connections-per-source": {
    kind: "integer",
    min: 1,
    description:
      "such connections from one source address (IPv6: one /64); in pool mode raise it where many devices or clients share one address (NAT)",
    default: "32",
  },
  "handshake-timeout": {
    kind: "duration",
    description: "close a connection whose TLS handshake has not finished this long after it was accepted (`0`: never)",
    default: "5s",
  },
  "unauthenticated-timeout": {
    kind: "duration",
    description: "close a connection that has made no authenticated call this long after it was accepted (`0`: never)",
    default: "10s",
  },
  "keepalive-time": { kind: "duration", description: "ping a quiet peer after (HTTP/2 pings)", default: "10s" },
  "keepalive-timeout": {
    kind: "duration",
    description: "declare a peer dead when a ping goes unanswered for",
    default: "5s",
  },
  "drain-timeout": {
    kind: "duration",
    description:
      "on SIGTERM, refuse new connections and let open ones finish for up to this; a second signal stops at once",
    default: "30s",
  },
} satisfies OptionSpecs;

/** `devicestreams relay` and its flags, for a container's args or a child process. */
export function relayArgs(flags: OptionArgs<typeof relayOptionSpecs>): string[] {
  return ["relay", ...toArgv(relayOptionSpecs, flags)];
}

/**
 * relay.json: which stream the relay serves and the digests of its two credentials. The relay
 * re-reads it when it changes: `stream`, `service` and `services` are its identity and cannot change live;
 * everything else applies at once (relay/config-reload.ts).
 */
export interface StreamConfig {
  version: 1;
  /** `namespace/name` of the DeviceStream, or any label in static mode. */
  stream: string;
  /** The device's allow-list name this stream reaches; with `services`, the first of them. */
  service: string;
  /**
   * Every allow-list name this stream reaches, `service` first (a client that names none gets it).
   * Absent: `service` alone, as in relay.json files written before streams had several.
   */
  services?: string[];
  /** After this instant both credentials are refused (RFC 3339). */
  expiresAt?: string;
  /**
   * At least one per role; during a rotation a role may have two (old and new), each admitted.
   * With `device`, no destination entry: the device side proves itself by its certificate.
   */
  credentials: Array<{ role: Role; sha256: string }>;
  /** The Device the stream is bound to: its agent's TLS client certificate must name it. */
  device?: BoundDevice;
  /**
   * Whether the source credential is accepted (the stream's `spec.access.sourceToken`). Absent:
   * accepted, as in relay.json files written before users were reviewed and in static streams.
   */
  acceptSourceToken?: boolean;
  /** Overrides the relay's flags of the same meaning, and can change while the relay runs. */
  limits?: StreamConfigLimits;
  /**
   * The DNS names of the stream's relay certificate (`tls.crt`): in pool mode (`--streams-dir`)
   * a call reaches this stream when its TLS server name (SNI) is one of them. Required there;
   * ignored with `--config`. May change live.
   */
  serverNames?: string[];
}

/**
 * Namespace and name always; the UID when the Device existed at the stream's creation, and the
 * enrolled key's SHA-256 (SPKI) when it was enrolled, so neither a re-created Device nor a
 * replaced (perhaps stolen) key can take the stream.
 */
export interface BoundDevice {
  namespace: string;
  name: string;
  uid?: string;
  publicKeySHA256?: string;
}

export interface StreamConfigLimits {
  maxConnections?: number;
  /** Bytes per second each way for the whole stream; 0 = unlimited. */
  bandwidthBytesPerSecond?: number;
  /** 0 = never. */
  idleTimeoutMs?: number;
  dialTimeoutMs?: number;
  attachWaitMs?: number;
}

/** The text of relay.json, as the relay's --config reads it. */
export function streamConfigFile(config: StreamConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}
