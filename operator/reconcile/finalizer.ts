// The finalizer revokes access at once when a stream is deleted: it deletes the relay Pod, which
// drops every tunnel, without waiting for the garbage collector; the GC removes the Service and
// the Secret (the operator may not delete Secrets). Then the stream's record goes onto its Device
// (history.ts), and the finalizer goes.

import { finalizer, relayName } from "../../api/constants.ts";
import { type DeviceStream, deviceStreamResource } from "../../api/v1alpha1.ts";
import { core, isNotFound, objectPath } from "../../kube/client.ts";
import { controlledBy } from "../../kube/objects.ts";
import { keyOf } from "../../kube/types.ts";
import type { ReconcileContext } from "./context.ts";
import { recordOnDevice } from "./history.ts";

const streamPath = (ds: DeviceStream) =>
  objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!);

export function hasFinalizer(ds: DeviceStream): boolean {
  return ds.metadata.finalizers?.includes(finalizer) ?? false;
}

export async function addFinalizer(ctx: ReconcileContext, ds: DeviceStream, manager: string): Promise<void> {
  // Server-side apply of just our entry: finalizers is a set, other entries are left alone. The
  // UID makes it fail rather than touch a newer stream of the same name.
  const body = {
    apiVersion: ds.apiVersion,
    kind: ds.kind,
    metadata: {
      name: ds.metadata.name,
      namespace: ds.metadata.namespace,
      uid: ds.metadata.uid,
      finalizers: [finalizer],
    },
  };
  await ctx.client.apply(streamPath(ds), body, manager);
}

export async function finalize(ctx: ReconcileContext, ds: DeviceStream, manager: string): Promise<void> {
  const key = keyOf(ds);
  if (!hasFinalizer(ds)) return;
  // Done already, and the cache does not show the stream gone yet: a second pass would read the
  // Device again and send a patch that can only answer Not Found.
  if (ctx.finalized.get(key) === ds.metadata.uid) return;
  const pod = ctx.pods.get(ds.metadata.namespace!, relayName(ds.metadata.name!));
  if (pod && controlledBy(pod, ds) && !pod.metadata.deletionTimestamp) {
    try {
      // A deleted stream is revoked: its tunnels end now. With the Pod's own grace period (15 s)
      // the relay would drain open sessions for that long after `kubectl delete`.
      await ctx.client.delete(objectPath(core.pods, ds.metadata.namespace!, pod.metadata.name!), {
        uid: pod.metadata.uid,
        gracePeriodSeconds: 1,
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  for (const waiting of ctx.capacity.release(key)) ctx.enqueue(waiting);
  // Its record outlives it on the Device; a failed write is retried before the finalizer goes.
  await recordOnDevice(ctx.client, ds, ctx.now());
  const i = ds.metadata.finalizers!.indexOf(finalizer);
  // The test makes the patch fail, not remove someone else's entry, if the list moved meanwhile.
  try {
    await ctx.client.jsonPatch(
      streamPath(ds),
      [
        { op: "test", path: `/metadata/finalizers/${i}`, value: finalizer },
        { op: "remove", path: `/metadata/finalizers/${i}` },
      ],
      manager,
    );
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  ctx.finalized.set(key, ds.metadata.uid!);
  ctx.events.record(ds, "Normal", "Deleted", "Finalize", "relay stopped and credentials revoked; the stream is gone");
  ctx.log.info("stream deleted; relay stopped", { stream: key });
}
