// When the leader writes an enrolment token: for a Device never enrolled, and for an enrolled one
// only when an administrator asked for it with spec.identity.reenroll. Re-keying a device is never
// the side effect of a field disappearing (the CRD also refuses removing spec.identity).
import type { Device } from "../../api/v1alpha1.ts";

/** When the current token in the Secret expires (so the leader knows when to make a new one). */
export const enrollmentExpiresAnnotation = "devicestreams.io/enrollment-expires-at";
/** The enrolled key the current token may replace; absent for a first-enrolment token. */
export const enrollmentReplacesAnnotation = "devicestreams.io/enrollment-replaces";

export interface TokenWanted {
  /** SHA-256 of the key a re-enrolment token may replace; undefined for a first enrolment. */
  replaces?: string;
  /** True when this is a new re-enrolment request, not the renewal of an expiring token. */
  newRequest: boolean;
}

/** Whether the Device needs a new token now (none, expiring, or one for another purpose). */
export function enrollmentTokenWanted(device: Device, ttlMs: number, now: number): TokenWanted | undefined {
  if (device.metadata.deletionTimestamp) return undefined;
  const identity = device.spec?.identity;
  const enrolled = identity?.publicKeySHA256;
  if (enrolled && identity?.reenroll !== true) return undefined;
  const annotations = device.metadata.annotations ?? {};
  const forThisKey = annotations[enrollmentReplacesAnnotation] === enrolled;
  const expires = Date.parse(annotations[enrollmentExpiresAnnotation] ?? "");
  // Renew a little early so that a token read from the Secret is never about to expire.
  const fresh = Number.isFinite(expires) && expires - now > Math.min(ttlMs / 10, 60_000);
  if (forThisKey && fresh) return undefined;
  return { replaces: enrolled, newRequest: enrolled !== undefined && !forThisKey };
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  time?: string;
  fieldsV1?: { "f:spec"?: { "f:identity"?: Record<string, unknown> } };
}

/**
 * Who set spec.identity.reenroll, as far as the API server records it: the field manager (kubectl
 * patch, a GitOps controller, ...) and when. The user behind it is in the API server's audit log.
 */
export function reenrollmentRequester(device: Device): string {
  const entries = (device.metadata as { managedFields?: ManagedFieldsEntry[] }).managedFields ?? [];
  const setter = entries.find((e) => e.fieldsV1?.["f:spec"]?.["f:identity"]?.["f:reenroll"] !== undefined);
  if (!setter?.manager) return "spec.identity.reenroll set";
  return `spec.identity.reenroll set by field manager "${setter.manager}"${setter.time ? ` at ${setter.time}` : ""}`;
}
