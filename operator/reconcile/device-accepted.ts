// DeviceAccepted belongs to the hub: it says whether the device's agent took the stream. Until
// the hub exists, this stand-in writes what the operator can tell from the Device object
// (missing, disabled, not offering the service, offline). It edits only that one condition with
// a JSON patch guarded by the resourceVersion: a server-side apply would make it the owner of the
// hub's fields (or, under the hub's field manager, drop the hub's other fields). It never
// overrides a verdict the hub gave (True, or False/Refused).

import { conditionTypes, fieldManager } from "../../api/constants.ts";
import { condition, reasons, streamServices } from "../../api/devicestream.ts";
import type { Condition, Device, DeviceStream } from "../../api/v1alpha1.ts";
import { deviceStreamResource } from "../../api/v1alpha1.ts";
import { KubeApiError, objectPath } from "../../kube/client.ts";
import type { ReconcileContext } from "./context.ts";

export function deviceAcceptance(ds: DeviceStream, device: Device | undefined): [Condition["status"], string, string] {
  const ns = ds.metadata.namespace;
  const name = ds.spec.device;
  if (!device) {
    return [
      "False",
      reasons.deviceNotFound,
      `Device "${name}" does not exist in namespace "${ns}"; create it or fix spec.device`,
    ];
  }
  if (device.spec?.disabled) return ["False", reasons.deviceDisabled, `Device "${name}" is disabled (spec.disabled)`];
  const offered = device.status?.services?.map((s) => s.name) ?? [];
  const missing = streamServices(ds.spec).filter((s) => !offered.includes(s));
  if (offered.length > 0 && missing.length > 0) {
    return [
      "False",
      reasons.serviceNotOffered,
      `Device "${name}" does not offer service ${missing.map((s) => `"${s}"`).join(", ")}; it offers ${offered.join(", ")}`,
    ];
  }
  if (!device.status?.connected)
    return ["Unknown", reasons.deviceOffline, `the agent of Device "${name}" is not connected`];
  return ["Unknown", reasons.waitingForDevice, `waiting for Device "${name}" to accept the stream`];
}

/** What the stand-in reports for `ds` now; undefined when the hub's verdict stands. */
export function standInAcceptance(
  ds: DeviceStream,
  device: Device | undefined,
): Pick<Condition, "status" | "reason" | "message"> | undefined {
  const current = condition(ds.status, conditionTypes.deviceAccepted);
  if (current?.status === "True" || current?.reason === reasons.refused) return undefined;
  const [status, reason, message] = deviceAcceptance(ds, device);
  return { status, reason, message };
}

export async function reportDeviceAcceptance(ctx: ReconcileContext, ds: DeviceStream): Promise<void> {
  const current = condition(ds.status, conditionTypes.deviceAccepted);
  const standIn = standInAcceptance(ds, ctx.devices.get(ds.metadata.namespace!, ds.spec.device));
  if (!standIn) return;
  const { status, reason, message } = standIn;
  if (current && current.status === status && current.reason === reason && current.message === message) return;
  const now = new Date(ctx.now()).toISOString().replace(/\.\d+Z$/, "Z");
  const cond: Condition = {
    type: conditionTypes.deviceAccepted,
    status,
    reason,
    message,
    lastTransitionTime: current?.status === status ? current.lastTransitionTime : now,
    observedGeneration: ds.metadata.generation ?? 0,
  };
  const conditions = ds.status?.conditions;
  // The operator's own status write (which creates the list) comes first; the watch brings us back.
  if (!conditions) return;
  const i = conditions.findIndex((c) => c.type === conditionTypes.deviceAccepted);
  const path = objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!, "status");
  const ops = [
    { op: "test", path: "/metadata/resourceVersion", value: ds.metadata.resourceVersion },
    i >= 0
      ? { op: "replace", path: `/status/conditions/${i}`, value: cond }
      : { op: "add", path: "/status/conditions/-", value: cond },
  ];
  try {
    await ctx.client.jsonPatch(path, ops, fieldManager);
  } catch (err) {
    // The cache was behind: the event that moves it on reconciles again.
    if (err instanceof KubeApiError && (err.status === 422 || err.status === 409)) return;
    throw err;
  }
}
