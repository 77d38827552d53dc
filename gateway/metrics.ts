// Gateway metrics. Labels are bounded enums (outcome, reason); a server name never becomes a
// label value: anyone can send any name, and every distinct value would be a new series.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export function gatewayMetrics(registry: Registry) {
  const registers = [registry];
  return {
    connectionsActive: new Gauge({
      name: "devicestreams_gateway_connections_active",
      help: "Client connections open at the gateway, by phase (handshake: waiting for the ClientHello or the upstream; routed: bytes flowing).",
      labelNames: ["phase"],
      registers,
    }),
    connections: new Counter({
      name: "devicestreams_gateway_connections_total",
      help: "Client connections accepted, by outcome: routed, or refused for a reason (not_tls, malformed, too_large, no_server_name, bad_server_name, unknown_name, handshake_timeout, over_capacity, source_over_capacity, upstream_refused, upstream_timeout, upstream_error, client_closed).",
      labelNames: ["outcome", "reason"],
      registers,
    }),
    connectionsClosed: new Counter({
      name: "devicestreams_gateway_connections_closed_total",
      help: "Routed connections that ended, by how (completed: both sides closed cleanly; reset: either side reset or failed).",
      labelNames: ["reason"],
      registers,
    }),
    bytes: new Counter({
      name: "devicestreams_gateway_bytes_total",
      help: "Bytes copied by the gateway, by direction (upstream: client to relay or hub; downstream: back).",
      labelNames: ["direction"],
      registers,
    }),
    routeSeconds: new Histogram({
      name: "devicestreams_gateway_route_duration_seconds",
      help: "Time from accepting a connection to its upstream connection being open (ClientHello wait included).",
      buckets: [0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1],
      registers,
    }),
    routeReloads: new Counter({
      name: "devicestreams_gateway_routes_reloads_total",
      help: "Reloads of the routes file, by result (ok, error: the last good routes stay).",
      labelNames: ["result"],
      registers,
    }),
    routes: new Gauge({
      name: "devicestreams_gateway_routes",
      help: "Exact routes (names from --route and --routes-file) currently loaded.",
      registers,
    }),
  };
}

export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;
