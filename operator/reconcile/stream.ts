// One DeviceStream, level-based: recompute everything from the caches and make the cluster
// match. Safe to run any number of times; each step is a no-op when its part is already right.
//   deleted?  -> finalizer (stop relay, release slot)
//   ended?    -> tear the relay down, release the slot (timeouts decide in status.ts)
//   refused?  -> the operator's configuration does not allow spec.relay: Failed at once
//   otherwise -> take a slot under the caps, ensure Secret/Service/Pod (a refused write is
//                reported in RelayReady and tried again later: relay-failure.ts)
//   always    -> write status if it changed (+ an Event per transition), DeviceAccepted stand-in
//   ended long enough (retention.ts) -> delete it; its finalizer records it on the Device

import { conditionTypes, fieldManager, relayName } from "../../api/constants.ts";
import { condition, isTerminal, reasons } from "../../api/devicestream.ts";
import { type DeviceStream, deviceStreamResource } from "../../api/v1alpha1.ts";
import { isNotFound, objectPath } from "../../kube/client.ts";
import { controlledBy } from "../../kube/objects.ts";
import { splitKey } from "../../kube/types.ts";
import type { ReconcileResult } from "../controller.ts";
import { publishedGateway } from "../gateway-name.ts";
import { relayRefusal } from "../relay-policy.ts";
import type { ReconcileContext } from "./context.ts";
import { reportDeviceAcceptance, standInAcceptance } from "./device-accepted.ts";
import { deviceRevocation } from "./device-revocation.ts";
import { addFinalizer, finalize, hasFinalizer } from "./finalizer.ts";
import { deleteRoute, ensureRoute, routeRetryMs, routeWriteFailed } from "./gateway-route.ts";
import { ensureRelay, teardownRelay } from "./relay.ts";
import { RelayWriteError } from "./relay-failure.ts";
import { deleteAt } from "./retention.ts";
import { desiredStatus, ending, nextCheckMs, type Observed, type OwnedStatus, sameStatus } from "./status.ts";

const warningReasons = new Set<string>([
  reasons.concurrentStreamLimit,
  reasons.relayNameConflict,
  reasons.connectTimeout,
  reasons.deviceRefused,
  reasons.deviceDeleted,
  reasons.deviceRevoked,
  reasons.bytesPerDayExceeded,
  reasons.exposureNotAllowed,
  reasons.resourcesNotAllowed,
  reasons.relayInvalid,
  reasons.relayForbidden,
  reasons.relayAPIError,
]);

export async function reconcileStream(ctx: ReconcileContext, key: string): Promise<ReconcileResult | undefined> {
  const { namespace, name } = splitKey(key);
  let ds = ctx.streams.get(namespace, name);
  if (!ds) {
    for (const waiting of ctx.capacity.release(key)) ctx.enqueue(waiting);
    ctx.expectedPods.delete(key);
    ctx.relayFailures.clear(key);
    ctx.finalized.delete(key);
    return undefined;
  }
  if (ds.metadata.deletionTimestamp) {
    await finalize(ctx, ds, fieldManager);
    return undefined;
  }
  if (!hasFinalizer(ds)) await addFinalizer(ctx, ds, fieldManager);

  const now = ctx.now();
  // Our last status write, while the cache does not show it yet, is the status to go by: a pass
  // woken before its own write's watch event would otherwise write it again (with new transition
  // times), record its Event again and send a DeviceAccepted patch bound to fail.
  const lagging = ctx.writtenStatus.lagging(ds.metadata.uid!, ds.status, now);
  if (lagging) ds = { ...ds, status: { ...ds.status, ...lagging } };
  const cachedPod = ctx.pods.get(namespace, relayName(name));
  const cachedService = ctx.services.get(namespace, relayName(name));
  const pod = cachedPod && controlledBy(cachedPod, ds) ? cachedPod : undefined;
  const service = cachedService && controlledBy(cachedService, ds) ? cachedService : undefined;
  const observed = {
    now,
    stream: ds,
    admitted: ctx.capacity.has(key),
    capacityMessage: undefined as string | undefined,
    pod,
    service,
    podConflict: false,
    clusterDomain: ctx.relay.clusterDomain,
    caBundle: ctx.ca().certPem,
    bytesPerDayExceeded: ctx.usage?.exceeded(key),
    revoked: deviceRevocation(ds, ctx.devices.get(namespace, ds.spec.device)),
    // A relay that already runs keeps running when the configuration is tightened (as with the caps).
    refusal: pod ? undefined : relayRefusal(ds, ctx.relay),
    relayFailure: ctx.relayFailures.get(key, ds.metadata.uid!),
    gateway: publishedGateway(ds, ctx.relay),
    gatewayRoute: undefined as Observed["gatewayRoute"],
    accepted: undefined as Observed["accepted"],
  };

  // Take a slot first (an ending stream gives it back below) so that the timeout message can
  // say whether it was the caps that kept the stream waiting.
  if (!isTerminal(ds.status?.phase)) {
    observed.capacityMessage = ctx.capacity.acquire(key, namespace);
    observed.admitted = observed.capacityMessage === undefined;
  }
  // An ending decided by an earlier pass wins until the cache shows it: that pass tore the relay
  // down, so recomputing from a cache that lags would give another reason or message.
  const uid = ds.metadata.uid!;
  if (isTerminal(ds.status?.phase)) ctx.endings.delete(uid);
  const end = ctx.endings.get(uid) ?? ending(observed);
  if (end && !isTerminal(ds.status?.phase)) ctx.endings.set(uid, end);
  if (!end && observed.admitted && !ctx.relayFailures.waiting(key, uid, now)) {
    try {
      const state = await ensureRelay(ctx, ds, cachedPod, cachedService, fieldManager);
      observed.podConflict = state.conflict !== undefined;
      // The status written below then says what the API server answered (Pod Pending), not
      // "creating", which would take a second status write (and Event) once the cache caught up.
      if (state.created && !observed.pod) observed.pod = state.created;
      if (state.service && !observed.service) observed.service = state.service;
      ctx.relayFailures.clear(key);
      observed.relayFailure = undefined;
    } catch (err) {
      if (!(err instanceof RelayWriteError)) throw err;
      observed.relayFailure = ctx.relayFailures.record(key, uid, err, now);
      ctx.onRelayWriteError?.(err.kind, observed.relayFailure.reason);
      ctx.log.warn("the API server refused a relay object", {
        stream: key,
        reason: observed.relayFailure.reason,
        attempt: observed.relayFailure.attempt,
        error: err.message,
      });
    }
  }
  if (!end && observed.admitted) observed.gatewayRoute = await ensureRoute(ctx, ds, fieldManager);
  if (end) {
    ctx.relayFailures.clear(key);
    await teardownRelay(ctx, ds, pod, service);
    await deleteRoute(ctx, ds);
    for (const waiting of ctx.capacity.release(key)) ctx.enqueue(waiting);
  }

  if (!end) observed.accepted = standInAcceptance(ds, ctx.devices.get(namespace, ds.spec.device));
  const next = desiredStatus(observed, end);
  const wrote = await writeStatus(ctx, ds, next);
  if (wrote) ctx.writtenStatus.record(uid, next, now);
  // After a status write (or while the cache lags behind one) the cached resourceVersion is stale
  // and the guarded patch would only fail (422): the write's own watch event brings this stream
  // back to report it.
  if (!end && !wrote && !lagging) await reportDeviceAcceptance(ctx, ds).catch(ignoreMissing);
  let again = nextCheckMs(observed, end);
  // A name conflict clears up without an event on this stream: look again soon.
  if (observed.podConflict) again = Math.min(again ?? 2000, 2000);
  // Nor does a refused write: try again when its wait runs out.
  const failure = end ? undefined : ctx.relayFailures.get(key, uid);
  if (failure) again = Math.min(again ?? Number.POSITIVE_INFINITY, Math.max(0, failure.retryAt - now) + 10);
  // Nor does a refused TLSRoute write (no cache event will come): try it again in a while.
  if (observed.gatewayRoute?.[1] === routeWriteFailed) again = Math.min(again ?? routeRetryMs, routeRetryMs);
  // An ended stream is deleted once its retention time is up (the finalizer records it on the Device).
  const removeAt = deleteAt({ ...ds, status: { ...ds.status, ...next } }, ctx.streamTtlAfterFinishedMs ?? 0);
  if (removeAt !== undefined && removeAt <= now) {
    await deleteEnded(ctx, ds);
    return undefined;
  }
  if (removeAt !== undefined) again = Math.min(again ?? Number.POSITIVE_INFINITY, removeAt - now + 10);
  return again === undefined ? undefined : { requeueAfterMs: again };
}

/** True when it wrote (the status differed). */
async function writeStatus(ctx: ReconcileContext, ds: DeviceStream, next: OwnedStatus): Promise<boolean> {
  if (sameStatus(ds.status, next)) return false;
  const path = objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!, "status");
  const body = {
    apiVersion: ds.apiVersion,
    kind: ds.kind,
    metadata: { name: ds.metadata.name, namespace: ds.metadata.namespace },
    status: next,
  };
  try {
    await ctx.client.apply(path, body, fieldManager);
  } catch (err) {
    if (isNotFound(err)) return true; // deleted meanwhile; the delete event brings us back
    throw err;
  }
  const before = condition(ds.status, conditionTypes.ready);
  const after = next.conditions!.find((c) => c.type === conditionTypes.ready)!;
  if (before?.reason !== after.reason || before?.status !== after.status || ds.status?.phase !== next.phase) {
    const warning = next.phase === "Failed" || warningReasons.has(after.reason);
    ctx.events.record(ds, warning ? "Warning" : "Normal", after.reason, next.phase!, after.message);
    ctx.log.info("stream status changed", {
      stream: `${ds.metadata.namespace}/${ds.metadata.name}`,
      phase: next.phase,
      reason: after.reason,
    });
  }
  return true;
}

async function deleteEnded(ctx: ReconcileContext, ds: DeviceStream): Promise<void> {
  const path = objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!);
  try {
    // The UID: never a newer stream of the same name.
    await ctx.client.delete(path, { uid: ds.metadata.uid });
  } catch (err) {
    ignoreMissing(err);
    return;
  }
  ctx.log.info("deleted an ended stream after its retention time", {
    stream: `${ds.metadata.namespace}/${ds.metadata.name}`,
    endedAt: ds.status?.endedAt,
  });
}

function ignoreMissing(err: unknown): void {
  if (!isNotFound(err)) throw err;
}
