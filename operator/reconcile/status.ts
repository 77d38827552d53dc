// What a stream's status should say, from what the operator observes. Pure: no I/O, the clock is
// an argument, so every decision (timeouts, phases, condition reasons) is unit-tested.

import { conditionTypes, credentialsSecretName, relayName, relayPorts } from "../../api/constants.ts";
import { condition, expiresAt, isTerminal, reasons, streamServices } from "../../api/devicestream.ts";
import type { Condition, DeviceStream, DeviceStreamStatus } from "../../api/v1alpha1.ts";
import { podReady } from "../../kube/objects.ts";
import type { Pod, Service } from "../../kube/types.ts";
import { parseDuration } from "../../runtime/duration.ts";

export type Phase = NonNullable<DeviceStreamStatus["phase"]>;

export interface Observed {
  now: number;
  stream: DeviceStream;
  /** Holds a slot under the concurrency caps; otherwise `capacityMessage` says why not. */
  admitted: boolean;
  capacityMessage?: string;
  /** The relay Pod controlled by this stream, if any. */
  pod?: Pod;
  /** A Pod of the relay's name that belongs to something else. */
  podConflict?: boolean;
  service?: Service;
  clusterDomain: string;
  /** The operator CA (PEM) that relay certificates chain to: published so users need not read Secrets. */
  caBundle?: string;
  /** Set by the usage poller when the stream passed limits.bytesPerDay: why it must end. */
  bytesPerDayExceeded?: string;
  /** Why the stream's Device no longer stands behind it (device-revocation.ts), if it does not. */
  revoked?: { reason: string; message: string };
  /** Why the operator's configuration does not allow this stream's relay (relay-policy.ts). */
  refusal?: { reason: string; message: string };
  /** The gateway's address and the stream's name on it, when published (gateway-name.ts). */
  gateway?: { endpoint: string; serverName: string };
  /** Gateway API mode: the GatewayRoute condition (operator/gateway-route.ts). */
  gatewayRoute?: [Condition["status"], string, string];
  /** The API server refused a write of the relay (relay-failure.ts). */
  relayFailure?: { reason: string; summary: string; message: string };
  /**
   * DeviceAccepted as the stand-in (device-accepted.ts) is about to report it, when it will: Ready's
   * message then quotes it at once, rather than in a second status write after the stand-in's.
   */
  accepted?: Pick<Condition, "status" | "reason" | "message">;
}

export interface Ending {
  phase: "Expired" | "Failed";
  reason: string;
  message: string;
}

/** The fields the operator owns in status (the hub owns DeviceAccepted and the traffic figures). */
export type OwnedStatus = Pick<
  DeviceStreamStatus,
  "phase" | "observedGeneration" | "conditions" | "relay" | "expiresAt" | "endedAt" | "services"
>;

function deviceAttached(ds: DeviceStream): boolean {
  return condition(ds.status, conditionTypes.deviceAccepted)?.status === "True" || !!ds.status?.connectedAt;
}

/** Why the stream ends now, if it does; an ended stream stays ended. */
export function ending(o: Observed): Ending | undefined {
  const ds = o.stream;
  const prev = ds.status;
  if (isTerminal(prev?.phase)) {
    const ready = condition(prev, conditionTypes.ready);
    return { phase: prev!.phase as Ending["phase"], reason: ready?.reason ?? "Ended", message: ready?.message ?? "" };
  }
  const t = ds.spec.timeouts;
  const created = Date.parse(ds.metadata.creationTimestamp!);
  // The spec cannot change, so a stream the configuration refuses would only wait for its timeout.
  if (o.refusal) return { phase: "Failed", reason: o.refusal.reason, message: o.refusal.message };
  if (o.now >= expiresAt(ds)) {
    return {
      phase: "Expired",
      reason: reasons.lifetimeExpired,
      message: `the stream reached its maximum lifetime of ${t.maxLifetime}; create a new DeviceStream to continue`,
    };
  }
  if (o.bytesPerDayExceeded) {
    return { phase: "Expired", reason: reasons.bytesPerDayExceeded, message: o.bytesPerDayExceeded };
  }
  // The Device that accepted the stream was deleted, disabled, re-created or re-keyed: its access
  // is revoked, so the stream ends now rather than at its timeouts.
  if (o.revoked) return { phase: "Failed", ...o.revoked };
  const accepted = condition(prev, conditionTypes.deviceAccepted);
  if (accepted?.status === "False" && accepted.reason === reasons.refused) {
    return {
      phase: "Failed",
      reason: reasons.deviceRefused,
      message: `the device refused the stream: ${accepted.message}`,
    };
  }
  if (!deviceAttached(ds) && o.now >= created + parseDuration(t.connect)) {
    if (!o.admitted) {
      return {
        phase: "Failed",
        reason: reasons.concurrentStreamLimit,
        message: `no capacity within the connect timeout of ${t.connect}: ${o.capacityMessage}`,
      };
    }
    if (!o.pod && o.relayFailure) {
      return {
        phase: "Failed",
        reason: reasons.connectTimeout,
        message: `the relay was not created within the connect timeout of ${t.connect}: ${o.relayFailure.summary}; fix that, then create a new DeviceStream`,
      };
    }
    const [waitingFor, check] = podReady(o.pod)
      ? [`device "${ds.spec.device}" to attach`, "the device's agent and its allow-list"]
      : ["the relay to become ready", "the relay Pod's events (image, resources, scheduling)"];
    return {
      phase: "Failed",
      reason: reasons.connectTimeout,
      message: `still waiting for ${waitingFor} after the connect timeout of ${t.connect}; check ${check}, then create a new DeviceStream`,
    };
  }
  const last = prev?.lastActivityAt ? Date.parse(prev.lastActivityAt) : undefined;
  if (last !== undefined && o.now >= last + parseDuration(t.idle)) {
    return {
      phase: "Expired",
      reason: reasons.idleTimeout,
      message: `no traffic for ${t.idle} (the idle timeout); create a new DeviceStream to continue`,
    };
  }
  return undefined;
}

/** RelayReady while the stream runs: status, reason, message. */
function relayCondition(o: Observed): [Condition["status"], string, string] {
  if (!o.admitted) return ["False", reasons.concurrentStreamLimit, o.capacityMessage ?? "waiting for capacity"];
  if (o.podConflict) {
    return [
      "False",
      reasons.relayNameConflict,
      `Pod ${relayName(o.stream.metadata.name!)} exists and belongs to something else; waiting for it to go`,
    ];
  }
  const pod = o.pod;
  // A refused Service write matters even once the Pod exists; a refused Pod is why there is none.
  if (o.relayFailure) return ["False", o.relayFailure.reason, o.relayFailure.message];
  if (!pod) return ["False", reasons.relayStarting, "creating the relay Pod"];
  if (podReady(pod)) return ["True", reasons.relayReady, `relay Pod ${pod.metadata.name} is ready`];
  const waiting = pod.status?.containerStatuses?.find((c) => c.state?.waiting?.reason)?.state?.waiting;
  if (waiting && waiting.reason !== "ContainerCreating" && waiting.reason !== "PodInitializing") {
    const detail = waiting.message ? `: ${waiting.message}` : "";
    return ["False", reasons.relayNotReady, `relay container is waiting: ${waiting.reason}${detail}`];
  }
  // The scheduler's own words ("0/1 nodes are available: 1 Insufficient cpu") say what to change.
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
    return [
      "False",
      reasons.relayNotReady,
      `relay Pod ${pod.metadata.name} cannot be scheduled: ${scheduled.message ?? "no node fits it"}; ` +
        "ask for less in spec.relay.resources, or add capacity",
    ];
  }
  if (pod.status?.phase === "Running") {
    return [
      "False",
      reasons.relayNotReady,
      `relay Pod ${pod.metadata.name} runs but does not pass its readiness probe`,
    ];
  }
  return [
    "False",
    reasons.relayStarting,
    `relay Pod ${pod.metadata.name} is ${pod.status?.phase ?? "Pending"}; waiting for it to start`,
  ];
}

/** The status the operator should write; lastTransitionTime is kept where a condition did not change. */
export function desiredStatus(o: Observed, end: Ending | undefined): OwnedStatus {
  const ds = o.stream;
  const prev = ds.status;
  const generation = ds.metadata.generation ?? 0;
  let phase: Phase;
  let relay: [Condition["status"], string, string];
  let ready: [Condition["status"], string, string];
  if (end) {
    phase = end.phase;
    relay = ["False", reasons.streamEnded, "the relay was removed because the stream ended"];
    ready = ["False", end.reason, end.message];
  } else {
    relay = relayCondition(o);
    const accepted = o.accepted ?? condition(prev, conditionTypes.deviceAccepted);
    if (relay[0] !== "True") {
      phase = "Pending";
      ready = ["False", relay[1], relay[2]];
    } else if (deviceAttached(ds)) {
      phase = "Connected";
      ready = ["True", reasons.connected, `device "${ds.spec.device}" is attached; the stream is usable`];
    } else {
      phase = "WaitingForDevice";
      const why = accepted && accepted.status !== "True" ? `: ${accepted.message}` : "";
      ready = [
        "False",
        accepted?.reason ?? reasons.waitingForDevice,
        `relay is ready; waiting for device "${ds.spec.device}"${why}`,
      ];
    }
  }
  const cond = (type: string, [status, reason, message]: [Condition["status"], string, string]): Condition => {
    const old = condition(prev, type);
    const same = old && old.status === status;
    return {
      type,
      status,
      reason,
      message,
      lastTransitionTime: same ? old.lastTransitionTime : new Date(o.now).toISOString().replace(/\.\d+Z$/, "Z"),
      observedGeneration: generation,
    };
  };
  const status: OwnedStatus = {
    phase,
    observedGeneration: generation,
    conditions: [cond(conditionTypes.ready, ready), cond(conditionTypes.relayReady, relay)],
    expiresAt: new Date(expiresAt(ds)).toISOString().replace(/\.\d+Z$/, "Z"),
    // For the Services column, whichever form the spec uses (spec.service or spec.services).
    services: streamServices(ds.spec),
  };
  if (o.gatewayRoute && !end) status.conditions!.push(cond(conditionTypes.gatewayRoute, o.gatewayRoute));
  if (end) status.endedAt = prev?.endedAt ?? new Date(o.now).toISOString().replace(/\.\d+Z$/, "Z");
  else if (o.admitted) status.relay = relayStatus(o);
  return status;
}

function relayStatus(o: Observed): NonNullable<DeviceStreamStatus["relay"]> {
  const ds = o.stream;
  const svc = relayName(ds.metadata.name!);
  const host = `${svc}.${ds.metadata.namespace}.svc`;
  const out: NonNullable<DeviceStreamStatus["relay"]> = {
    serviceName: svc,
    endpoint: `${host}:${relayPorts.grpc}`,
    tlsServerName: host,
    credentialsSecret: credentialsSecretName(ds.metadata.name!, ds.metadata.uid!),
  };
  if (o.caBundle) out.caBundle = o.caBundle;
  const nodePort = o.service?.spec?.ports?.find((p) => p.name === "grpc")?.nodePort;
  if (nodePort) out.nodePort = nodePort;
  const ingress = o.service?.status?.loadBalancer?.ingress?.[0];
  const lbHost = ingress?.hostname ?? ingress?.ip;
  if (lbHost) out.externalEndpoint = `${lbHost}:${relayPorts.grpc}`;
  // Clients dial the gateway and send this name; the relay's certificate lists it.
  if (o.gateway) {
    out.externalEndpoint = o.gateway.endpoint;
    out.tlsServerName = o.gateway.serverName;
  }
  return out;
}

/** When to look again even if nothing changes: the next deadline. */
export function nextCheckMs(o: Observed, end: Ending | undefined): number | undefined {
  if (end) return undefined;
  const ds = o.stream;
  const t = ds.spec.timeouts;
  const deadlines = [expiresAt(ds)];
  if (!deviceAttached(ds)) deadlines.push(Date.parse(ds.metadata.creationTimestamp!) + parseDuration(t.connect));
  if (ds.status?.lastActivityAt) deadlines.push(Date.parse(ds.status.lastActivityAt) + parseDuration(t.idle));
  const next = Math.min(...deadlines.filter((d) => d > o.now));
  // A little after the deadline, so that the check that follows sees it passed.
  return Number.isFinite(next) ? next - o.now + 50 : undefined;
}

const ownedConditions = new Set<string>([conditionTypes.ready, conditionTypes.relayReady, conditionTypes.gatewayRoute]);

/** True when `next` says the same as the operator-owned part of `current`. */
export function sameStatus(current: DeviceStreamStatus | undefined, next: OwnedStatus): boolean {
  const pick = (s: DeviceStreamStatus | OwnedStatus | undefined) => ({
    phase: s?.phase,
    observedGeneration: s?.observedGeneration,
    conditions: (s?.conditions ?? [])
      .filter((c) => ownedConditions.has(c.type))
      .sort((a, b) => a.type.localeCompare(b.type)),
    relay: s?.relay,
    expiresAt: s?.expiresAt,
    endedAt: s?.endedAt,
    services: s?.services,
  });
  return stableJson(pick(current)) === stableJson(pick(next));
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val) =>
    val && typeof val === "object" && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val).sort(([a], [b]) => a.localeCompare(b)))
      : val,
  );
}
