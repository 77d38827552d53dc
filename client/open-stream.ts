// `kubectl devicestream open`: create a DeviceStream and follow its status until it can carry
// connections, saying what it waits for; every way it can fail becomes a DS_* error with advice.

import { randomBytes } from "node:crypto";
import { conditionTypes } from "../api/constants.ts";
import { reasons, streamServices } from "../api/devicestream.ts";
import {
  type Condition,
  type Device,
  type DeviceStream,
  deviceResource,
  deviceStreamResource,
} from "../api/v1alpha1.ts";
import { collectionPath, type KubeClient, objectPath } from "../kube/client.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { explainKubeError } from "./kube-errors.ts";
import { getStream, readyCondition } from "./stream-lookup.ts";

export interface OpenRequest {
  namespace: string;
  device: string;
  /** The device's services the stream reaches; one is written as spec.service, several as spec.services. */
  services: string[];
  name?: string;
  timeoutMs: number;
  /** spec.timeouts.connect: how long the stream itself waits for the device (server default 5m). */
  connectTimeout?: string;
  /** spec.timeouts.idle and maxLifetime (server defaults 15m and 8h). */
  idle?: string;
  maxLifetime?: string;
  /** spec.limits.maxConnections (server default 100). */
  maxConnections?: number;
  /** spec.relay.exposure (server default ClusterIP; the operator's --relay-exposures may refuse others). */
  exposure?: string;
}

/** The CRD's defaults, sent when a request sets some timeouts but not all (the API wants the three together). */
const defaultTimeouts = { connect: "5m", idle: "15m", maxLifetime: "8h" } as const;

/** The DeviceStream a request asks for: only what it sets, so the API server's defaults apply to the rest. */
export function streamBody(r: OpenRequest, name: string) {
  const timeouts =
    r.connectTimeout || r.idle || r.maxLifetime
      ? {
          connect: r.connectTimeout ?? defaultTimeouts.connect,
          idle: r.idle ?? defaultTimeouts.idle,
          maxLifetime: r.maxLifetime ?? defaultTimeouts.maxLifetime,
        }
      : undefined;
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: { name, namespace: r.namespace },
    spec: {
      device: r.device,
      ...(r.services.length === 1 ? { service: r.services[0] } : { services: r.services }),
      ...(timeouts ? { timeouts } : {}),
      ...(r.maxConnections === undefined ? {} : { limits: { maxConnections: r.maxConnections } }),
      ...(r.exposure ? { relay: { exposure: r.exposure } } : {}),
    },
  };
}

/** A DNS label of at most 57 characters (the CRD's rule), from device and service. */
export function streamName(device: string, service: string): string {
  const suffix = randomBytes(3).toString("hex");
  const base = `${device}-${service}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .slice(0, 57 - suffix.length - 1)
    .replace(/-+$/, "");
  return `${base || "stream"}-${suffix}`;
}

const cond = (ds: DeviceStream, type: string): Condition | undefined =>
  ds.status?.conditions?.find((c) => c.type === type);

/** The error for a stream that ended, by the reason the operator or the hub gave. */
export function endedError(ds: DeviceStream): DeviceStreamsError {
  const ready = readyCondition(ds);
  const reason = ready?.reason ?? "Unknown";
  const msg = ready?.message ?? "";
  const name = ds.metadata.name;
  switch (reason) {
    case "DeviceRefused":
      return new DeviceStreamsError(
        "DS_DEVICE_REFUSED",
        `${msg}; the device's agent decides what it serves: add ${streamServices(ds.spec)
          .map((s) => `"${s}"`)
          .join(", ")} to its allow-list (--allow ${streamServices(ds.spec)[0]}=host:port, …), then open a new stream`,
      );
    case "ConcurrentStreamLimit":
      return new DeviceStreamsError(
        "DS_OVER_QUOTA",
        `${msg}; close streams you no longer need (\`kubectl devicestream list\`, \`close\`), or ask the platform team to raise the cap`,
      );
    case "ConnectTimeout": {
      const offline = cond(ds, conditionTypes.deviceAccepted)?.reason === reasons.deviceOffline;
      return new DeviceStreamsError(
        offline ? "DS_DEVICE_OFFLINE" : "DS_STREAM_FAILED",
        `DeviceStream "${name}" failed: ${msg}`,
      );
    }
    case "LifetimeExpired":
    case "IdleTimeout":
      return new DeviceStreamsError("DS_STREAM_EXPIRED", `DeviceStream "${name}" has expired: ${msg}`);
    default:
      return new DeviceStreamsError("DS_STREAM_FAILED", `DeviceStream "${name}" failed (${reason}): ${msg}`);
  }
}

/** The error for a stream still waiting when the plugin's --timeout ran out: say what it waits for. */
function stillWaitingError(ds: DeviceStream, timeoutMs: number): DeviceStreamsError {
  const ready = readyCondition(ds);
  const accepted = cond(ds, conditionTypes.deviceAccepted);
  const after = `after ${Math.round(timeoutMs / 1000)}s`;
  const keep = `the stream stays open until its connect timeout; \`kubectl devicestream close ${ds.metadata.name}\` to give up`;
  if (ready?.reason === reasons.concurrentStreamLimit) {
    return new DeviceStreamsError("DS_OVER_QUOTA", `still no capacity ${after}: ${ready.message}; ${keep}`);
  }
  if (accepted?.reason === reasons.deviceOffline) {
    return new DeviceStreamsError(
      "DS_DEVICE_OFFLINE",
      `device "${ds.spec.device}" is still offline ${after}: ${accepted.message}; check that its agent runs and reaches the hub; ${keep}`,
    );
  }
  if (accepted?.reason === reasons.deviceNotFound) {
    return new DeviceStreamsError("DS_NO_SUCH_DEVICE", `${accepted.message}; ${keep}`);
  }
  if (accepted?.reason === reasons.serviceNotOffered || accepted?.reason === reasons.deviceDisabled) {
    return new DeviceStreamsError("DS_DEVICE_REFUSED", `${accepted.message}; ${keep}`);
  }
  return new DeviceStreamsError(
    "DS_OPEN_TIMEOUT",
    `DeviceStream "${ds.metadata.name}" is not connected ${after} (${ready?.reason ?? "Pending"}: ${ready?.message ?? "no status yet"}); ${keep}`,
  );
}

export async function openStream(
  kube: KubeClient,
  r: OpenRequest,
  progress: (line: string) => void,
): Promise<DeviceStream> {
  // A missing Device is the most common typo: say so before creating anything. Not being allowed
  // to read Devices is no reason to stop; the stream's own condition will tell.
  try {
    const device = await kube.get<Device>(objectPath({ ...deviceResource }, r.namespace, r.device));
    if (!device.status?.connected) {
      progress(`device "${r.device}" is offline now; the stream will wait for it`);
    }
  } catch (err) {
    const e = explainKubeError(err, `get Device "${r.device}"`, () => {
      return new DeviceStreamsError(
        "DS_NO_SUCH_DEVICE",
        `Device "${r.device}" does not exist in namespace "${r.namespace}"; check the name with \`kubectl get devices -n ${r.namespace}\``,
      );
    });
    if (!(e instanceof DeviceStreamsError) || e.code !== "DS_FORBIDDEN") throw e;
  }
  const name = r.name ?? streamName(r.device, r.services.join("-"));
  const body = streamBody(r, name);
  try {
    await kube.create(collectionPath({ ...deviceStreamResource }, r.namespace), body, "kubectl-devicestream");
  } catch (err) {
    throw explainKubeError(err, `create DeviceStream "${name}" in namespace "${r.namespace}"`);
  }
  progress(`devicestream "${name}" created`);
  const deadline = Date.now() + r.timeoutMs;
  const said = new Set<string>();
  const say = (key: string, line: string) => {
    if (!said.has(key)) progress(line);
    said.add(key);
  };
  for (;;) {
    const ds = await getStream(kube, r.namespace, name);
    const phase = ds.status?.phase;
    if (phase === "Failed" || phase === "Expired") throw endedError(ds);
    const relay = cond(ds, conditionTypes.relayReady);
    const accepted = cond(ds, conditionTypes.deviceAccepted);
    if (relay?.reason === reasons.concurrentStreamLimit)
      say(`cap:${relay.message}`, `waiting for capacity: ${relay.message}`);
    if (relay?.status === "True") say("relay", `relay ready (${ds.status?.relay?.endpoint})`);
    if (accepted && accepted.status !== "True") say(`acc:${accepted.reason}`, `device: ${accepted.message}`);
    if (accepted?.status === "True") say("accepted", `device "${r.device}" accepted the stream`);
    if (phase === "Connected") {
      say("connected", "connected: the stream carries connections now");
      return ds;
    }
    if (Date.now() > deadline) throw stillWaitingError(ds, r.timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
