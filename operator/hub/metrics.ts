// Hub metrics; labels are bounded enums, never a device or stream name.
import { Counter, Gauge, type Registry } from "prom-client";

export function hubMetrics(registry: Registry) {
  const registers = [registry];
  return {
    sessions: new Gauge({
      name: "devicestreams_hub_sessions_active",
      help: "Agent control sessions this replica holds now.",
      registers,
    }),
    sessionAttempts: new Counter({
      name: "devicestreams_hub_session_attempts_total",
      help: "Agent session attempts by result (accepted, no_certificate, bad_certificate, revoked, disabled).",
      labelNames: ["result"],
      registers,
    }),
    enrollments: new Counter({
      name: "devicestreams_hub_enrollments_total",
      help:
        "Enrolment attempts by result: ok, rate_limited, invalid_name, not_found, disabled, already_enrolled, " +
        "token_invalid, token_expired, bad_csr, unavailable, error.",
      labelNames: ["result"],
      registers,
    }),
    grpcConnections: new Gauge({
      name: "devicestreams_hub_grpc_connections_open",
      help: "TCP connections to the hub's port open now, authenticated or not.",
      registers,
    }),
    grpcConnectionsRefused: new Counter({
      name: "devicestreams_hub_grpc_connections_refused_total",
      help: "Connections to the hub's port refused or cut, by reason (max_connections, max_per_source, handshake_timeout, unauthenticated_timeout).",
      labelNames: ["reason"],
      registers,
    }),
    accessReviews: new Counter({
      name: "devicestreams_hub_access_reviews_total",
      help: "Relays' questions whether a user may connect, by answer: allowed, or the DS_* code of the refusal or failure.",
      labelNames: ["result"],
      registers,
    }),
    offers: new Counter({
      name: "devicestreams_hub_stream_offers_total",
      help: "Stream offers by result (offered, accepted, refused).",
      labelNames: ["result"],
      registers,
    }),
  };
}

export type HubMetrics = ReturnType<typeof hubMetrics>;
