// Relay metrics. Labels are bounded: enums, and user names capped at 50. Stream and device names never
// become label values: a single-stream relay's target is its stream in Prometheus; a pool relay's
// figures sum its streams (10,000 streams must not make 10,000 series), and each stream's own
// figures are in its usage report (`/usage`).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export function relayMetrics(registry: Registry) {
  const registers = [registry];
  return {
    connectionsActive: new Gauge({
      name: "devicestreams_relay_connections_active",
      help: "Tunnelled TCP connections currently paired through this relay.",
      registers,
    }),
    connections: new Counter({
      name: "devicestreams_relay_connections_total",
      help: "Tunnelled connections asked for by the service side, by how the attempt ended.",
      labelNames: ["result"],
      registers,
    }),
    bytes: new Counter({
      name: "devicestreams_relay_bytes_total",
      help: "Payload bytes forwarded, by direction (to_device or from_device).",
      labelNames: ["direction"],
      registers,
    }),
    destinationAttached: new Gauge({
      name: "devicestreams_relay_device_attached",
      help: "Streams whose device's agent is attached to this relay (1 or 0 for a single-stream relay).",
      registers,
    }),
    authFailures: new Counter({
      name: "devicestreams_relay_auth_failures_total",
      help: "Calls refused for their credential, by role and reason.",
      labelNames: ["role", "reason"],
      registers,
    }),
    userConnections: new Counter({
      name: "devicestreams_relay_user_connections_total",
      help: "Connect calls admitted with a user's own Kubernetes credentials, by user (the first 50 users by name, later ones as `other`).",
      labelNames: ["user"],
      registers,
    }),
    tlsHandshakeFailures: new Counter({
      name: "devicestreams_relay_tls_handshake_failures_total",
      help: "Connections to the gRPC port dropped in the TLS handshake: not TLS, or a client that does not trust the relay's certificate.",
      registers,
    }),
    grpcConnections: new Gauge({
      name: "devicestreams_relay_grpc_connections_open",
      help: "TCP connections to the gRPC port open now, authenticated or not (each carries many tunnelled connections).",
      registers,
    }),
    grpcConnectionsRefused: new Counter({
      name: "devicestreams_relay_grpc_connections_refused_total",
      help: "Connections to the gRPC port refused or cut, by reason (max_connections, max_per_source, handshake_timeout, unauthenticated_timeout; in pool mode unknown_server_name, missing_server_name).",
      labelNames: ["reason"],
      registers,
    }),
    connectionsClosed: new Counter({
      name: "devicestreams_relay_connections_closed_total",
      help: "Paired connections that ended, by how (completed, reset, idle_timeout, lifetime, peer_lost, protocol_error).",
      labelNames: ["reason"],
      registers,
    }),
    streams: new Gauge({
      name: "devicestreams_relay_streams",
      help: "Streams this relay serves now (1 for a single-stream relay; the stream folders in use in pool mode).",
      registers,
    }),
    configReloads: new Counter({
      name: "devicestreams_relay_config_reloads_total",
      help: "Changes of relay.json (in pool mode: of a stream folder, added or changed) seen while running, by result (applied, or refused: invalid or a field that cannot change live).",
      labelNames: ["result"],
      registers,
    }),
    pairingSeconds: new Histogram({
      name: "devicestreams_relay_pairing_duration_seconds",
      help: "Time from a service-side call to its pairing with the device side.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    }),
  };
}

export type RelayMetrics = ReturnType<typeof relayMetrics>;
