// Enrolment: the leader keeps a fresh one-time token in `<device>-enrollment` for every Device
// without an identity, and for an enrolled one whose administrator set spec.identity.reenroll;
// any hub replica redeems it (Enroll), records the device's public key in spec.identity (which
// cannot be removed, and changes only through reenroll, which is what makes the token single-use)
// and signs the device's CSR with the operator CA.
import { status as grpcStatus } from "@grpc/grpc-js";
import { hubFieldManager, labels, managedByValue } from "../../api/constants.ts";
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { core, isNotFound, KubeApiError, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import type { Logger } from "../../runtime/log.ts";
import { type KeyPairPem, publicKeySha256, signCertificateRequest } from "../../runtime/pki.ts";
import type { EventRecorder } from "../events.ts";
import { checkEnrollmentToken, makeEnrollmentToken } from "./enrollment-token.ts";
import { deviceUri } from "./identity.ts";
import { pemChain } from "./pem.ts";
import {
  enrollmentExpiresAnnotation,
  enrollmentReplacesAnnotation,
  enrollmentTokenWanted,
  reenrollmentRequester,
} from "./reenrollment.ts";

export { enrollmentExpiresAnnotation } from "./reenrollment.ts";
export const enrollmentSecretName = (device: string) => `${device}-enrollment`;

/** A gRPC-ready failure: status code plus a DS_* code and a message that says what to do. */
export class HubError extends Error {
  readonly grpcCode: grpcStatus;
  readonly code: string;
  constructor(grpcCode: grpcStatus, code: string, message: string) {
    super(message);
    this.grpcCode = grpcCode;
    this.code = code;
  }
  get details(): string {
    return `${this.code}: ${this.message}`;
  }
}

export function enrollmentSecret(device: Device, token: string, expiresAtMs: number): Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: enrollmentSecretName(device.metadata.name!),
      namespace: device.metadata.namespace!,
      labels: {
        [labels.partOf]: "devicestreams",
        [labels.managedBy]: managedByValue,
        [labels.component]: "enrollment",
      },
      ownerReferences: [
        { apiVersion: device.apiVersion, kind: device.kind, name: device.metadata.name!, uid: device.metadata.uid! },
      ],
    },
    type: "Opaque",
    data: {
      token: Buffer.from(token).toString("base64"),
      expiresAt: Buffer.from(new Date(expiresAtMs).toISOString()).toString("base64"),
    },
  };
}

/**
 * Leader: a Device without identity, or one whose re-enrolment was asked for, whose token is
 * missing, expiring or made for another key gets a new one. A new re-enrolment request is recorded
 * as an Event on the Device (`events`), naming who set spec.identity.reenroll where the API knows.
 */
export async function ensureEnrollmentToken(
  client: KubeClient,
  device: Device,
  key: Buffer,
  ttlMs: number,
  now: number,
  manager: string,
  events?: EventRecorder,
): Promise<number | undefined> {
  const want = enrollmentTokenWanted(device, ttlMs, now);
  if (!want) return undefined;
  const expiresAtMs = now + ttlMs;
  const ns = device.metadata.namespace!;
  const devicePath = objectPath({ ...deviceResource }, ns, device.metadata.name!);
  const token = makeEnrollmentToken(key, device.metadata.uid!, expiresAtMs, want.replaces);
  const secret = enrollmentSecret(device, token, expiresAtMs);
  await client.apply(objectPath(core.secrets, ns, secret.metadata.name!), secret, manager);
  const annotation = (name: string) => `/metadata/annotations/${name.replace("/", "~1")}`;
  const expiresAt = new Date(expiresAtMs).toISOString();
  const ops: unknown[] = [{ op: "test", path: "/metadata/uid", value: device.metadata.uid }];
  if (!device.metadata.annotations) ops.push({ op: "add", path: "/metadata/annotations", value: {} });
  ops.push({ op: "add", path: annotation(enrollmentExpiresAnnotation), value: expiresAt });
  if (want.replaces) ops.push({ op: "add", path: annotation(enrollmentReplacesAnnotation), value: want.replaces });
  await client.jsonPatch(devicePath, ops, manager);
  if (want.newRequest && events) {
    // The cache drops managedFields; this rare case reads them to say who asked.
    const fresh = await client.get<Device>(devicePath).catch(() => device);
    events.record(
      device,
      "Warning",
      "ReenrollmentRequested",
      "Reenroll",
      `re-enrolment requested (${reenrollmentRequester(fresh)}): a one-time token for the next agent to enrol as ` +
        `this Device is in Secret ${secret.metadata.name} until ${expiresAt}; the current key (SHA-256 ` +
        `${want.replaces}) keeps working until then. Set spec.identity.reenroll to false to withdraw the request`,
    );
  }
  return expiresAtMs;
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
  // Enrolled: only a re-enrolment an administrator asked for, with a token bound to the current key.
  const replaces = device.spec?.identity?.publicKeySHA256;
  if (replaces && device.spec?.identity?.reenroll !== true) {
    throw new HubError(
      grpcStatus.FAILED_PRECONDITION,
      "DS_ALREADY_ENROLLED",
      `${where} is already enrolled, so its enrolment token is used up; to enrol an agent with a new key, an ` +
        "administrator sets spec.identity.reenroll to true and gives it the new token from the <device>-enrollment Secret",
    );
  }
  const check = checkEnrollmentToken(d.tokenKey, device.metadata.uid!, req.token, Date.now(), replaces);
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
        // Replaces the whole identity: a re-enrolment also clears reenroll.
        { op: "add", path: "/spec/identity", value: { publicKeySHA256: keyHash } },
      ],
      hubFieldManager,
    );
  } catch (err) {
    if (err instanceof KubeApiError && (err.status === 409 || err.status === 422)) {
      throw new HubError(
        grpcStatus.FAILED_PRECONDITION,
        "DS_ALREADY_ENROLLED",
        `${where} changed or was enrolled meanwhile; if this agent did not enrol it, set spec.identity.reenroll to true and enrol again with the new token`,
      );
    }
    throw new HubError(grpcStatus.UNAVAILABLE, "DS_HUB_UNAVAILABLE", "the hub cannot update the Device now; retry");
  }
  if (replaces) {
    d.events.record(
      device,
      "Warning",
      "Reenrolled",
      "Enroll",
      `device enrolled again as requested with spec.identity.reenroll: public key SHA-256 ${replaces} replaced by ` +
        `${keyHash}; the old key's certificates are no longer accepted`,
    );
  } else {
    d.events.record(device, "Normal", "Enrolled", "Enroll", `device enrolled; public key SHA-256 ${keyHash}`);
  }
  d.log.info(replaces ? "device enrolled again" : "device enrolled", { device: `${req.namespace}/${req.name}` });
  return { chainPem: pemChain(certPem, d.ca.certPem), caPem: d.ca.certPem };
}
