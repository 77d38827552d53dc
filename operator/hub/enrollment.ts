// Enrolment: the leader keeps a fresh one-time token in `<device>-enrollment` for every Device
// without an identity (operator/reconcile/enrollment-secret.ts); any hub replica redeems it
// (Enroll), records the device's public key in spec.identity (immutable once set, which is what
// makes the token single-use) and signs the device's CSR with the operator CA.
import { status as grpcStatus } from "@grpc/grpc-js";
import { hubFieldManager } from "../../api/constants.ts";
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { isNotFound, KubeApiError, type KubeClient, objectPath } from "../../kube/client.ts";
import type { ErrorCode } from "../../runtime/error-codes.ts";
import { errorDetail } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { type KeyPairPem, publicKeySha256, signCertificateRequest } from "../../runtime/pki.ts";
import type { EventRecorder } from "../events.ts";
import { checkEnrollmentToken } from "./enrollment-token.ts";
import { deviceUri } from "./identity.ts";
import { pemChain } from "./pem.ts";

/** A gRPC-ready failure: status code plus a DS_* code and a message that says what to do. */
export class HubError extends Error {
  readonly grpcCode: grpcStatus;
  readonly code: ErrorCode;
  constructor(grpcCode: grpcStatus, code: ErrorCode, message: string) {
    super(message);
    this.grpcCode = grpcCode;
    this.code = code;
  }
  get details(): string {
    return errorDetail(this.code, this.message);
  }
}

export interface EnrollDeps {
  client: KubeClient;
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

export async function enroll(d: EnrollDeps, req: EnrollInput): Promise<{ chainPem: string; caPem: string }> {
  const where = `Device "${req.name}" in namespace "${req.namespace}"`;
  if (!req.namespace || !req.name) {
    throw new HubError(grpcStatus.INVALID_ARGUMENT, "DS_USAGE", "name the device as --device NAMESPACE/NAME");
  }
  let device: Device;
  try {
    device = await d.client.get<Device>(objectPath({ ...deviceResource }, req.namespace, req.name));
  } catch (err) {
    if (isNotFound(err)) {
      throw new HubError(
        grpcStatus.NOT_FOUND,
        "DS_DEVICE_NOT_FOUND",
        `${where} does not exist; create it (kubectl apply) or fix --device`,
      );
    }
    throw new HubError(grpcStatus.UNAVAILABLE, "DS_HUB_UNAVAILABLE", "the hub cannot read Devices now; retry later");
  }
  if (device.spec?.disabled) {
    throw new HubError(grpcStatus.PERMISSION_DENIED, "DS_DEVICE_DISABLED", `${where} is disabled (spec.disabled)`);
  }
  if (device.spec?.identity?.publicKeySHA256) {
    throw new HubError(
      grpcStatus.FAILED_PRECONDITION,
      "DS_ALREADY_ENROLLED",
      `${where} is already enrolled, so its enrolment token is used up; an agent that lost its key must be ` +
        "enrolled again: delete and re-create the Device, then use the new token",
    );
  }
  const check = checkEnrollmentToken(d.tokenKey, device.metadata.uid!, req.token);
  if (!check.ok) throw new HubError(grpcStatus.UNAUTHENTICATED, check.code, check.message);
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
      uris: [deviceUri({ namespace: req.namespace, name: req.name, uid: device.metadata.uid! })],
      usage: "client",
      validityMs: d.certValidityMs,
    });
  } catch (err) {
    throw new HubError(grpcStatus.INVALID_ARGUMENT, "DS_BAD_CSR", (err as Error).message);
  }
  // The resourceVersion guard makes two enrolments racing with one token end with one winner.
  try {
    await d.client.jsonPatch(
      objectPath({ ...deviceResource }, req.namespace, req.name),
      [
        { op: "test", path: "/metadata/resourceVersion", value: device.metadata.resourceVersion },
        { op: "add", path: "/spec/identity", value: { publicKeySHA256: keyHash } },
      ],
      hubFieldManager,
    );
  } catch (err) {
    if (err instanceof KubeApiError && (err.status === 409 || err.status === 422)) {
      throw new HubError(
        grpcStatus.FAILED_PRECONDITION,
        "DS_ALREADY_ENROLLED",
        `${where} changed or was enrolled meanwhile; if this agent did not enrol it, delete and re-create the Device`,
      );
    }
    throw new HubError(grpcStatus.UNAVAILABLE, "DS_HUB_UNAVAILABLE", "the hub cannot update the Device now; retry");
  }
  d.events.record(device, "Normal", "Enrolled", "Enroll", `device enrolled; public key SHA-256 ${keyHash}`);
  d.log.info("device enrolled", { device: `${req.namespace}/${req.name}` });
  return { chainPem: pemChain(certPem, d.ca.certPem), caPem: d.ca.certPem };
}
