// When the leader writes an enrolment token: for a Device never enrolled, and for an enrolled one
// only when an administrator asked for it with spec.identity.reenroll. Re-keying a device is never
// the side effect of a field disappearing (the CRD also refuses removing spec.identity).
import type { Device } from "../../api/v1alpha1.ts";

/** When the current token in the Secret expires (so the leader knows when to make a new one). */
export const enrollmentExpiresAnnotation = "devicestreams.io/enrollment-expires-at";
/** The enrolled key the current token may replace; absent for a first-enrolment token. */
export const enrollmentReplacesAnnotation = "devicestreams.io/enrollment-replaces";

/** When a token expiring at `expiresAtMs` is renewed: a little early, so that one read from the Secret is never about to expire. */
export function renewalDue(expiresAtMs: number, ttlMs: number): number {
  return expiresAtMs - Math.min(ttlMs / 10, 60_000);
}

export interface TokenWanted {
  /** SHA-256 of the key a re-enrolment token may replace; undefined for a first enrolment. */
  replaces?: string;
  /** True when this is a new re-enrolment request, not the renewal of an expiring token. */
  newRequest: boolean;
}

/** The token on record, when the Device should hold one at all (undefined: it should not). */
function tokenOnRecord(device: Device): { enrolled?: string; forThisKey: boolean; expires: number } | undefined {
  if (device.metadata.deletionTimestamp) return undefined;
  const identity = device.spec?.identity;
  const enrolled = identity?.publicKeySHA256;
  if (enrolled && identity?.reenroll !== true) return undefined;
  const annotations = device.metadata.annotations ?? {};
  return {
    enrolled,
    forThisKey: annotations[enrollmentReplacesAnnotation] === enrolled,
    expires: Date.parse(annotations[enrollmentExpiresAnnotation] ?? ""),
  };
}

/** Whether the Device needs a new token now (none, expiring, or one for another purpose). */
export function enrollmentTokenWanted(device: Device, ttlMs: number, now: number): TokenWanted | undefined {
  const t = tokenOnRecord(device);
  if (!t) return undefined;
  if (t.forThisKey && Number.isFinite(t.expires) && now < renewalDue(t.expires, ttlMs)) return undefined;
  return { replaces: t.enrolled, newRequest: t.enrolled !== undefined && !t.forThisKey };
}

/** When the Device's current token expires, if it should hold one and the one on record is for its current key. */
export function currentTokenExpiry(device: Device): number | undefined {
  const t = tokenOnRecord(device);
  return t?.forThisKey && Number.isFinite(t.expires) ? t.expires : undefined;
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
