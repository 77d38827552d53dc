// Enrolment: the leader keeps a fresh one-time token (in the operator's namespace) for every Device
// without an identity, and for an enrolled one whose administrator set spec.identity.reenroll
// (operator/reconcile/enrollment-secret.ts); any hub replica redeems it (Enroll), records the
// device's public key in spec.identity (which cannot be removed, and changes only through reenroll,
// which is what makes the token single-use) and signs the device's CSR with the operator CA.
import { status as grpcStatus } from "@grpc/grpc-js";
import { hubFieldManager } from "../../api/constants.ts";
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { isNotFound, KubeApiError, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import { checkNamespace, checkObjectName } from "../../kube/names.ts";
import { deviceUri } from "../../runtime/device-certificate.ts";
import type { ErrorCode } from "../../runtime/error-codes.ts";
import { errorDetail } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { type KeyPairPem, publicKeySha256, signCertificateRequest } from "../../runtime/pki.ts";
import type { EventRecorder } from "../events.ts";
import { checkEnrollmentToken } from "./enrollment-token.ts";
import { pemChain } from "./pem.ts";

/** A gRPC-ready failure: status code plus a DS_* code and a message that says what to do. */
export class HubError extends Error {
  readonly grpcCode: grpcStatus;
  readonly code: ErrorCode;
  /** `cause` is for the operator's log, never for the caller. */
  constructor(grpcCode: grpcStatus, code: ErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.grpcCode = grpcCode;
    this.code = code;
  }
  get details(): string {
    return errorDetail(this.code, this.message);
  }
}

export interface EnrollDeps {
  client: KubeClient;
  /** The Device cache: an anonymous caller costs no API request before it has shown a valid token. */
  devices: Pick<Informer<Device>, "get" | "synced">;
  ca: KeyPairPem;
  tokenKey: Buffer;
  certValidityMs: number;
  events: EventRecorder;
  log: Logger;
}

export interface EnrollInput {
  token: string;
  namespace: string;
  name: string;
  csrPem: string;
}

/** Why an enrolment was refused; only the operator's side (Event, log, metric) learns which. */
export type RefusalReason = "not_found" | "disabled" | "already_enrolled" | "token_invalid" | "token_expired";

export class EnrollmentRefusal extends Error {
  readonly reason: RefusalReason;
  /** The Device the refusal is about, when it exists. */
  readonly device: Device | undefined;
  constructor(reason: RefusalReason, device: Device | undefined, message: string) {
    super(message);
    this.reason = reason;
    this.device = device;
  }
}

function checkState(device: Device, where: string): void {
  if (device.metadata.deletionTimestamp) {
    throw new EnrollmentRefusal("not_found", device, `${where} is being deleted`);
  }
  if (device.spec?.disabled) {
    throw new EnrollmentRefusal("disabled", device, `${where} is disabled (spec.disabled)`);
  }
  // Enrolled: only a re-enrolment an administrator asked for, with a token bound to the current key.
  if (device.spec?.identity?.publicKeySHA256 && device.spec.identity.reenroll !== true) {
    throw new EnrollmentRefusal(
      "already_enrolled",
      device,
      `${where} is already enrolled, so its enrolment token is used up; to enrol an agent with a new key, an ` +
        "administrator sets spec.identity.reenroll to true and gives it the new token from the Secret that status.enrollment names",
    );
  }
}

export async function enroll(
  d: EnrollDeps,
  req: EnrollInput,
): Promise<{ chainPem: string; caPem: string; device: Device }> {
  try {
    checkNamespace(req.namespace, "device namespace");
    checkObjectName(req.name, "device name");
  } catch (err) {
    throw new HubError(
      grpcStatus.INVALID_ARGUMENT,
      "DS_INVALID_NAME",
      `${(err as Error).message}; name the device as --device NAMESPACE/NAME`,
    );
  }
  if (!d.devices.synced) {
    throw new HubError(grpcStatus.UNAVAILABLE, "DS_HUB_UNAVAILABLE", "the hub is still loading Devices; retry shortly");
  }
  const where = `Device "${req.name}" in namespace "${req.namespace}"`;
  const cached = d.devices.get(req.namespace, req.name);
  // The key a re-enrolment replaces: its token is bound to it (enrollment-token.ts).
  const replaces = cached?.spec?.identity?.publicKeySHA256;
  // The token is checked whether the Device exists or not, so that both refusals take as long.
  const check = checkEnrollmentToken(d.tokenKey, cached?.metadata.uid ?? "", req.token, Date.now(), replaces);
  if (!cached) throw new EnrollmentRefusal("not_found", undefined, `${where} does not exist`);
  checkState(cached, where);
  if (!check.ok) {
    const reason = check.code === "DS_ENROLLMENT_TOKEN_EXPIRED" ? "token_expired" : "token_invalid";
    throw new EnrollmentRefusal(reason, cached, `${check.code}: ${check.message}`);
  }
  // From here on the caller has shown this Device's valid token: precise answers tell it nothing new.
  let keyHash: string;
  try {
    keyHash = publicKeySha256(req.csrPem);
  } catch {
    throw new HubError(grpcStatus.INVALID_ARGUMENT, "DS_BAD_CSR", "the certificate request is not a PEM CSR");
  }
  let certPem: string;
  try {
    certPem = await signCertificateRequest(d.ca, req.csrPem, {
      commonName: `${req.namespace}/${req.name}`,
      uris: [deviceUri({ namespace: req.namespace, name: req.name, uid: cached.metadata.uid! })],
      usage: "client",
      validityMs: d.certValidityMs,
    });
  } catch (err) {
    throw new HubError(grpcStatus.INVALID_ARGUMENT, "DS_BAD_CSR", (err as Error).message);
  }
  await recordIdentity(d, cached, keyHash, replaces, where);
  if (replaces) {
    d.events.record(
      cached,
      "Warning",
      "Reenrolled",
      "Enroll",
      `device enrolled again as requested with spec.identity.reenroll: public key SHA-256 ${replaces} replaced by ` +
        `${keyHash}; the old key's certificates are no longer accepted`,
    );
  } else {
    d.events.record(cached, "Normal", "Enrolled", "Enroll", `device enrolled; public key SHA-256 ${keyHash}`);
  }
  d.log.info(replaces ? "device enrolled again" : "device enrolled", { device: `${req.namespace}/${req.name}` });
  return { chainPem: pemChain(certPem, d.ca.certPem), caPem: d.ca.certPem, device: cached };
}

/**
 * Writes spec.identity. The patch holds only if the Device is still the one the token was made
 * for (UID) and not disabled, and for a re-enrolment only while the key it replaces is still
 * enrolled and reenroll still asked for; the CRD lets publicKeySHA256 change only after reenroll, so
 * of two enrolments racing with one token and two keys only the first holds. The cache may be
 * behind, so a failed patch is explained from a fresh read.
 */
async function recordIdentity(
  d: EnrollDeps,
  device: Device,
  keyHash: string,
  replaces: string | undefined,
  where: string,
): Promise<void> {
  const path = objectPath({ ...deviceResource }, device.metadata.namespace!, device.metadata.name!);
  const stillAsked = replaces
    ? [
        { op: "test", path: "/spec/identity/publicKeySHA256", value: replaces },
        { op: "test", path: "/spec/identity/reenroll", value: true },
      ]
    : [];
  try {
    await d.client.jsonPatch(
      path,
      [
        { op: "test", path: "/metadata/uid", value: device.metadata.uid },
        { op: "test", path: "/spec/disabled", value: false },
        ...stillAsked,
        // Replaces the whole identity: a re-enrolment also clears reenroll.
        { op: "add", path: "/spec/identity", value: { publicKeySHA256: keyHash } },
      ],
      hubFieldManager,
    );
    return;
  } catch (err) {
    if (isNotFound(err)) throw new EnrollmentRefusal("not_found", undefined, `${where} was deleted meanwhile`);
    if (!(err instanceof KubeApiError && (err.status === 409 || err.status === 422))) throw unavailable(err);
  }
  let fresh: Device;
  try {
    fresh = await d.client.get<Device>(path);
  } catch (err) {
    if (isNotFound(err)) throw new EnrollmentRefusal("not_found", undefined, `${where} was deleted meanwhile`);
    throw unavailable(err);
  }
  if (fresh.metadata.uid !== device.metadata.uid) {
    throw new EnrollmentRefusal(
      "token_invalid",
      fresh,
      `${where} was deleted and created again meanwhile; the token was the old Device's`,
    );
  }
  checkState(fresh, where);
  if (fresh.spec?.identity?.publicKeySHA256 !== replaces) {
    throw new EnrollmentRefusal(
      "token_invalid",
      fresh,
      `${where} enrolled another key meanwhile; the token was for ${replaces ? `replacing key ${replaces}` : "its first enrolment"}`,
    );
  }
  throw unavailable(new Error("the Device changed meanwhile"));
}

function unavailable(cause: unknown): HubError {
  return new HubError(
    grpcStatus.UNAVAILABLE,
    "DS_HUB_UNAVAILABLE",
    "the hub cannot update the Device now; retry",
    cause,
  );
}
