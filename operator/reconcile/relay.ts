// Brings a stream's relay into being (Secret, Service, NetworkPolicy, Pod) and takes it down when the stream
// ends. Only objects controlled by this stream's UID are ever changed. A write the API server
// refuses throws a RelayWriteError (relay-failure.ts), which the stream's status then reports.

import { annotations, gatewayFieldManager } from "../../api/constants.ts";
import { type DeviceStream, deviceStreamResource } from "../../api/v1alpha1.ts";
import { collectionPath, core, isAlreadyExists, isNotFound, objectPath } from "../../kube/client.ts";
import { controlledBy } from "../../kube/objects.ts";
import { keyOf, type Pod, type Service } from "../../kube/types.ts";
import { gatewayServerName } from "../gateway-name.ts";
import { buildNetworkPolicy, networkPolicyResource } from "../relay-network-policy.ts";
import { buildPod, buildSecret, buildService } from "../relay-objects.ts";
import type { ReconcileContext } from "./context.ts";
import { bindDevice } from "./device-binding.ts";
import { writing } from "./relay-failure.ts";

/** How long a created Pod may take to show up in the cache before it is created again. */
const expectationMs = 30_000;

export interface RelayState {
  /** Set when a Pod or Service of the relay's name belongs to something else. */
  conflict?: string;
  /** The Pod as the API server answered its creation: the cache has not seen it yet. */
  created?: Pod;
  /** The Service as the API server answered its apply, when it was applied. */
  service?: Service;
}

export async function ensureRelay(
  ctx: ReconcileContext,
  ds: DeviceStream,
  pod: Pod | undefined,
  service: Service | undefined,
  manager: string,
): Promise<RelayState> {
  const ns = ds.metadata.namespace!;
  const key = keyOf(ds);
  if (service && !controlledBy(service, ds)) return { conflict: `Service ${service.metadata.name}` };
  if (pod && !controlledBy(pod, ds)) return { conflict: `Pod ${pod.metadata.name}` };

  const wantService = buildService(ds, ctx.relay);
  const hash = annotations.configHash;
  let applied: Service | undefined;
  if (service?.metadata.annotations?.[hash] !== wantService.metadata.annotations?.[hash]) {
    const name = wantService.metadata.name!;
    applied = await writing("Service", name, () =>
      ctx.client.apply<Service>(objectPath(core.services, ns, name), wantService, manager),
    );
  }

  if (pod && (pod.status?.phase === "Failed" || pod.status?.phase === "Succeeded")) {
    // The stream is still valid (an ended one is torn down instead): replace the relay.
    if (!pod.metadata.deletionTimestamp) {
      await deleteIgnoringMissing(ctx, objectPath(core.pods, ns, pod.metadata.name!), pod.metadata.uid);
      const why = pod.status.reason ?? pod.status.phase;
      ctx.events.record(ds, "Warning", "RelayRestarted", "DeleteRelay", `relay Pod ended (${why}); starting a new one`);
    }
    return {};
  }
  if (pod) {
    ctx.expectedPods.delete(key);
    return {};
  }
  const expected = ctx.expectedPods.get(key);
  if (expected !== undefined && ctx.now() - expected < expectationMs) return {};

  // The Secret is created, never updated: its tokens must not change under a running stream.
  // With a hub, the device side proves itself by the Device's certificate; without one (static
  // agents), by the destination token in the Secret: the weaker mode (docs/trust.md).
  const bound = ctx.relay.bindDevices ? await bindDevice(ctx, ds) : undefined;
  const secret = await buildSecret(ds, ctx.ca(), ctx.relay, bound);
  const created = await writing("Secret", secret.metadata.name!, async () => {
    try {
      await ctx.client.create(collectionPath(core.secrets, ns), secret, manager);
      return true;
    } catch (err) {
      // Its name carries this stream's UID, so an existing one is ours (from an earlier relay Pod).
      if (!isAlreadyExists(err)) throw err;
      return false;
    }
  });
  // Applied before every relay Pod is created, so no relay runs without it.
  const np = ctx.relay.networkPolicy;
  if (np) {
    const policy = buildNetworkPolicy(ds, ctx.relay, np);
    const name = policy.metadata.name!;
    const path = objectPath(networkPolicyResource, ns, name);
    await writing("NetworkPolicy", name, () => ctx.client.apply(path, policy, manager));
  }
  // Only a Secret made just now is known to list the gateway name: an existing one may predate
  // the domain. A failure here leaves the stream on its in-cluster name, which still works.
  if (created && ctx.relay.gatewayDomain)
    await recordGatewayName(ctx, ds, gatewayServerName(ds, ctx.relay.gatewayDomain));
  const wantPod = buildPod(ds, ctx.relay, ctx.now());
  const podName = wantPod.metadata.name!;
  const podAnswer = await writing("Pod", podName, () =>
    ctx.client.apply<Pod>(objectPath(core.pods, ns, podName), wantPod, manager),
  );
  ctx.expectedPods.set(key, ctx.now());
  ctx.events.record(
    ds,
    "Normal",
    "RelayCreated",
    "CreateRelay",
    `created relay Pod and Service ${wantPod.metadata.name}`,
  );
  return { created: podAnswer, service: applied };
}

async function recordGatewayName(ctx: ReconcileContext, ds: DeviceStream, name: string): Promise<void> {
  const body = {
    apiVersion: ds.apiVersion,
    kind: ds.kind,
    // The UID makes it fail rather than mark a newer stream of the same name.
    metadata: {
      name: ds.metadata.name,
      namespace: ds.metadata.namespace,
      uid: ds.metadata.uid,
      annotations: { [annotations.gatewayServerName]: name },
    },
  };
  try {
    await ctx.client.apply(
      objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!),
      body,
      gatewayFieldManager,
    );
  } catch (err) {
    ctx.log.warn("could not record the stream's gateway name; it keeps its in-cluster name", {
      stream: keyOf(ds),
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/** Deletes the relay Pod and Service of an ended stream; the Secret goes with the stream. */
export async function teardownRelay(
  ctx: ReconcileContext,
  ds: DeviceStream,
  pod: Pod | undefined,
  service: Service | undefined,
): Promise<boolean> {
  const ns = ds.metadata.namespace!;
  let removed = false;
  for (const [obj, res] of [
    [pod, core.pods],
    [service, core.services],
  ] as const) {
    if (obj && controlledBy(obj, ds) && !obj.metadata.deletionTimestamp) {
      await deleteIgnoringMissing(ctx, objectPath(res, ns, obj.metadata.name!), obj.metadata.uid);
      removed = true;
    }
  }
  ctx.expectedPods.delete(keyOf(ds));
  return removed;
}

async function deleteIgnoringMissing(ctx: ReconcileContext, path: string, uid: string | undefined): Promise<void> {
  try {
    await ctx.client.delete(path, { uid });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
