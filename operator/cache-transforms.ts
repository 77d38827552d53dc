// What the operator's caches keep of each object (Informer `transform`): only what the reconcilers,
// the hub and the usage poller read, so that 10,000 streams fit the chart's memory limit. A relay
// Pod's spec (container, volumes, probes, security context) is most of its size and is only ever
// written, never read back; the same goes for a Service's selector. A field added to a reader must
// be kept here too: operator/cache-transforms.test.ts lists what each reader relies on.

import { annotations } from "../api/constants.ts";
import type { Device, DeviceStream } from "../api/v1alpha1.ts";
import type { ObjectMeta, Pod, Service } from "../kube/types.ts";

/** kubectl apply keeps a whole copy of the object in this annotation; nothing here reads it. */
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration";

function meta(m: ObjectMeta, keepAnnotations: readonly string[] = []): ObjectMeta {
  const out: ObjectMeta = {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
  };
  if (m.generation !== undefined) out.generation = m.generation;
  if (m.creationTimestamp) out.creationTimestamp = m.creationTimestamp;
  if (m.deletionTimestamp) out.deletionTimestamp = m.deletionTimestamp;
  if (m.finalizers) out.finalizers = m.finalizers;
  if (m.ownerReferences) {
    out.ownerReferences = m.ownerReferences.map((r) => ({
      apiVersion: r.apiVersion,
      kind: r.kind,
      name: r.name,
      uid: r.uid,
      ...(r.controller ? { controller: true } : {}),
    }));
  }
  const kept = keepAnnotations.filter((a) => m.annotations?.[a] !== undefined);
  if (kept.length) out.annotations = Object.fromEntries(kept.map((a) => [a, m.annotations![a]!]));
  return out;
}

/** Relay Pods: identity, owner, and the status that says whether the relay is ready and where. */
export function podForCache(pod: Pod): Pod {
  const s = pod.status;
  const status: NonNullable<Pod["status"]> = {};
  if (s?.phase) status.phase = s.phase;
  if (s?.reason) status.reason = s.reason;
  if (s?.message) status.message = s.message;
  if (s?.podIP) status.podIP = s.podIP;
  if (s?.conditions) {
    status.conditions = s.conditions.map((c) => ({
      type: c.type,
      status: c.status,
      ...(c.reason ? { reason: c.reason } : {}),
      ...(c.message ? { message: c.message } : {}),
    }));
  }
  // Only why a container waits (ImagePullBackOff, ...) is shown in the stream's status.
  const waiting = s?.containerStatuses?.filter((c) => c.state?.waiting?.reason);
  if (waiting?.length) {
    status.containerStatuses = waiting.map((c) => ({
      name: c.name,
      ready: c.ready,
      restartCount: c.restartCount,
      state: { waiting: c.state!.waiting },
    }));
  }
  return { apiVersion: pod.apiVersion, kind: pod.kind, metadata: meta(pod.metadata), status };
}

/** Relay Services: the hash of what was applied, the node port and a load balancer's address. */
export function serviceForCache(svc: Service): Service {
  const out: Service = {
    apiVersion: svc.apiVersion,
    kind: svc.kind,
    metadata: meta(svc.metadata, [annotations.configHash]),
    spec: { type: svc.spec?.type, ports: svc.spec?.ports?.map((p) => ({ ...p })) },
  };
  if (svc.status?.loadBalancer?.ingress?.length) out.status = svc.status;
  return out;
}

// The (possibly empty) annotations object stays: JSON patches (enrollment-secret.ts) add to it when
// the cache shows it exists, and adding a whole object would replace the server's.
function dropLastApplied(m: ObjectMeta): void {
  if (m.annotations?.[lastApplied] !== undefined) delete m.annotations[lastApplied];
}

let caBundle: string | undefined;

/** DeviceStreams: all but kubectl's copy; the CA bundle every status repeats is shared, not copied. */
export function streamForCache(ds: DeviceStream): DeviceStream {
  dropLastApplied(ds.metadata);
  const relay = ds.status?.relay;
  if (relay?.caBundle !== undefined) {
    if (relay.caBundle === caBundle) relay.caBundle = caBundle;
    else caBundle = relay.caBundle;
  }
  return ds;
}

/** Devices: all but kubectl's copy and the history of ended streams, which is read fresh when written. */
export function deviceForCache(device: Device): Device {
  dropLastApplied(device.metadata);
  if (device.status?.recentStreams) delete device.status.recentStreams;
  return device;
}
