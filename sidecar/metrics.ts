// Agent metrics; labels are bounded enums (never a stream, service or host name).
import { Counter, Gauge, type Registry } from "prom-client";

export function agentMetrics(registry: Registry) {
  const registers = [registry];
  const bytes = new Counter({
    name: "devicestreams_agent_bytes_total",
    help: "Payload bytes carried between relays and local targets, by direction (to_target or from_target).",
    labelNames: ["direction"],
    registers,
  });
  return {
    relaysAttached: new Gauge({
      name: "devicestreams_agent_relays_attached",
      help: "Relays this agent is attached to and serving.",
      registers,
    }),
    attachAttempts: new Counter({
      name: "devicestreams_agent_attach_attempts_total",
      help: "Attempts to attach to a relay, by result (attached, failed, refused).",
      labelNames: ["result"],
      registers,
    }),
    dials: new Counter({
      name: "devicestreams_agent_dials_total",
      help: "Dials of local targets asked for by a relay, by result.",
      labelNames: ["result"],
      registers,
    }),
    connectionsActive: new Gauge({
      name: "devicestreams_agent_connections_active",
      help: "Tunnelled connections open between relays and local targets.",
      registers,
    }),
    hubState: new Gauge({
      name: "devicestreams_agent_hub_state",
      help: "1 for the hub session's current state (enrolling, connecting, connected, waiting, revoked, stopped).",
      labelNames: ["state"],
      registers,
    }),
    hubAttempts: new Counter({
      name: "devicestreams_agent_hub_attempts_total",
      help: "Hub session attempts by result (connected, failed, revoked).",
      labelNames: ["result"],
      registers,
    }),
    renewals: new Counter({
      name: "devicestreams_agent_certificate_renewals_total",
      help: "Device certificates renewed over the hub session.",
      registers,
    }),
    bytesToTarget: bytes.labels({ direction: "to_target" }),
    bytesFromTarget: bytes.labels({ direction: "from_target" }),
  };
}

export type AgentMetrics = ReturnType<typeof agentMetrics>;
