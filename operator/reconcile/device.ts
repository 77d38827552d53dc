// One Device, level-based, on the leader (only when the hub is enabled):
//   no identity yet, or re-enrolment asked for (spec.identity.reenroll) -> a fresh enrolment
//     token in a Secret in the operator's namespace (enrollment-secret.ts; reenrollment.ts says when)
//   enrolled, request withdrawn or being deleted -> that Secret deleted, the finalizer released
//   connected, but no replica has heard from it for 90 s -> mark it disconnected (stale-device.ts)
// and look again at whichever comes first: the token's renewal or the moment it would turn stale.
import { fieldManager } from "../../api/constants.ts";
import type { Device } from "../../api/v1alpha1.ts";
import type { KubeClient } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import { splitKey } from "../../kube/types.ts";
import type { ReconcileResult } from "../controller.ts";
import type { EventRecorder } from "../events.ts";
import type { HubReports } from "../hub/reports.ts";
import { reconcileEnrollmentToken } from "./enrollment-secret.ts";
import { renewalDue } from "./reenrollment.ts";
import { holderOf, staleAt } from "./stale-device.ts";

export interface DeviceContext {
  client: KubeClient;
  devices: Informer<Device>;
  reports: HubReports;
  /** The key enrolment tokens are signed with (derived from the CA). */
  tokenKey: () => Buffer;
  tokenTtlMs: number;
  /** Where enrolment tokens live: the operator's own namespace. */
  tokenNamespace: string;
  /** The leader's recorder: a re-enrolment request is recorded on the Device. */
  events: EventRecorder;
  now(): number;
}

export async function reconcileDevice(ctx: DeviceContext, key: string): Promise<ReconcileResult | undefined> {
  const { namespace, name } = splitKey(key);
  const device = ctx.devices.get(namespace, name);
  if (!device) return undefined;
  const now = ctx.now();
  const later: number[] = [];
  const expires = await reconcileEnrollmentToken(
    {
      client: ctx.client,
      secretNamespace: ctx.tokenNamespace,
      key: ctx.tokenKey(),
      ttlMs: ctx.tokenTtlMs,
      manager: fieldManager,
      events: ctx.events,
    },
    device,
    now,
  );
  // A deleted Device's token went with it (its finalizer held it until then).
  if (device.metadata.deletionTimestamp) return undefined;
  if (expires !== undefined) later.push(renewalDue(expires, ctx.tokenTtlMs) - now);
  const stale = staleAt(device);
  if (stale !== undefined && now >= stale) await markLost(ctx, device);
  else if (stale !== undefined) later.push(stale - now);
  return later.length ? { requeueAfterMs: Math.max(0, Math.min(...later)) } : undefined;
}

async function markLost(ctx: DeviceContext, d: Device): Promise<void> {
  const holder = holderOf(d);
  await ctx.reports.device(d, {
    connected: false,
    lastSeen: Date.parse(d.status?.lastSeen ?? "") || ctx.now(),
    agentVersion: d.status?.agentVersion,
    services: d.status?.services?.map((x) => x.name),
    replica: holder,
    lostReason: `no hub replica has heard from the agent since ${d.status?.lastSeen ?? "ever"} (its replica ${holder} is gone)`,
  });
}
