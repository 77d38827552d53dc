// Questions about Kubernetes objects that the operator, the hub and the usage poller all ask.
import type { OwnerReference, Pod } from "./types.ts";

export function podReady(pod: Pod | undefined): boolean {
  return pod?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** True when `obj` is controlled by the object of this UID (not an earlier one of the same name). */
export function controlledBy(
  obj: { metadata: { ownerReferences?: OwnerReference[] } },
  owner: { metadata: { uid?: string } },
): boolean {
  return (obj.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === owner.metadata.uid);
}
