// The leader's half of enrolment: a fresh one-time token for every Device without an identity, and
// for an enrolled one whose re-enrolment an administrator asked for (reenrollment.ts says when),
// renewed shortly before it expires; the hub redeems it (hub/enrollment.ts).
//
// The token lives in the operator's own namespace, never next to the Device: whoever may read
// Secrets where streams live (every plugin user: client/rbac.yaml) could otherwise enrol their own
// key before the real device does. An owner reference cannot cross namespaces, so the Device holds
// a finalizer while its token exists, and the leader deletes the Secret when the Device is
// enrolled or goes. Device.status.enrollment says where the token is.
import { createHash } from "node:crypto";
import { labels, managedByValue } from "../../api/constants.ts";
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { core, isNotFound, KubeApiError, type KubeClient, objectPath } from "../../kube/client.ts";
import { maxLabelLength, maxSubdomainLength } from "../../kube/names.ts";
import type { Secret } from "../../kube/types.ts";
import type { EventRecorder } from "../events.ts";
import { makeEnrollmentToken } from "../hub/enrollment-token.ts";
import {
  currentTokenExpiry,
  enrollmentExpiresAnnotation,
  enrollmentReplacesAnnotation,
  enrollmentTokenWanted,
  reenrollmentRequester,
} from "./reenrollment.ts";

/** Held by a Device while its token Secret may exist, so that deleting the Device deletes the token. */
export const enrollmentFinalizer = "devicestreams.io/enrollment-token";

/** Who an enrolment Secret is for (an owner reference cannot say it across namespaces). */
export const enrollmentLabels = {
  deviceNamespace: "devicestreams.io/device-namespace",
  /** Only when the name fits a label value (63 characters); the annotation always holds it. */
  deviceName: "devicestreams.io/device-name",
  deviceUid: "devicestreams.io/device-uid",
} as const;
export const enrollmentDeviceAnnotation = "devicestreams.io/device";

/**
 * `<namespace>.<name>.enrollment`: one Secret per Device, distinct for every namespace and name
 * (a namespace has no dots, so the first dot ends it). A name too long for that gets cut, with a
 * hash of the whole namespace/name in its place.
 */
export function enrollmentSecretName(namespace: string, name: string): string {
  const full = `${namespace}.${name}.enrollment`;
  if (full.length <= maxSubdomainLength) return full;
  const hash = createHash("sha256").update(`${namespace}/${name}`).digest("hex").slice(0, 16);
  const room = maxSubdomainLength - `${namespace}.-${hash}.enrollment`.length;
  const head = name.slice(0, room).replace(/[-.]+$/, "");
  return `${namespace}.${head}-${hash}.enrollment`;
}

export function enrollmentSecret(device: Device, secretNamespace: string, token: string, expiresAtMs: number): Secret {
  const ns = device.metadata.namespace!;
  const name = device.metadata.name!;
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: enrollmentSecretName(ns, name),
      namespace: secretNamespace,
      labels: {
        [labels.partOf]: "devicestreams",
        [labels.managedBy]: managedByValue,
        [labels.component]: "enrollment",
        [enrollmentLabels.deviceNamespace]: ns,
        ...(name.length <= maxLabelLength ? { [enrollmentLabels.deviceName]: name } : {}),
        [enrollmentLabels.deviceUid]: device.metadata.uid!,
      },
      annotations: { [enrollmentDeviceAnnotation]: `${ns}/${name}` },
    },
    type: "Opaque",
    data: {
      token: Buffer.from(token).toString("base64"),
      expiresAt: Buffer.from(new Date(expiresAtMs).toISOString()).toString("base64"),
    },
  };
}

export interface EnrollmentDeps {
  client: KubeClient;
  /** Where tokens live: the operator's namespace. */
  secretNamespace: string;
  key: Buffer;
  ttlMs: number;
  manager: string;
  events: EventRecorder;
}

const annotationPath = (name: string) => `/metadata/annotations/${name.replace("/", "~1")}`;
const devicePath = (d: Device) => objectPath({ ...deviceResource }, d.metadata.namespace!, d.metadata.name!);
const uidTest = (d: Device) => ({ op: "test", path: "/metadata/uid", value: d.metadata.uid });

/**
 * Leader: a Device without identity, or one whose re-enrolment was asked for, whose token is
 * missing, expiring or made for another key gets a new one; one that no longer needs its token
 * (enrolled, request withdrawn, being deleted) loses it. A new re-enrolment request is recorded as
 * an Event on the Device, naming who set spec.identity.reenroll where the API knows. Returns when
 * the Device's token expires (undefined: it holds none).
 */
export async function reconcileEnrollmentToken(
  d: EnrollmentDeps,
  device: Device,
  now: number,
): Promise<number | undefined> {
  let want = enrollmentTokenWanted(device, d.ttlMs, now);
  // A token on record without the finalizer was an earlier version's, next to the Device and no
  // longer accepted (enrollment-token.ts): make one here at once rather than at its renewal.
  if (!want && currentTokenExpiry(device) !== undefined && !device.metadata.finalizers?.includes(enrollmentFinalizer)) {
    want = { replaces: device.spec?.identity?.publicKeySHA256, newRequest: false };
  }
  if (!want) {
    const expires = currentTokenExpiry(device);
    if (expires === undefined) await releaseEnrollmentToken(d, device);
    return expires;
  }
  const expiresAtMs = now + d.ttlMs;
  // The finalizer first: a Device deleted from here on still has its Secret cleaned up.
  if (!device.metadata.finalizers?.includes(enrollmentFinalizer)) {
    const add = device.metadata.finalizers
      ? { op: "add", path: "/metadata/finalizers/-", value: enrollmentFinalizer }
      : { op: "add", path: "/metadata/finalizers", value: [enrollmentFinalizer] };
    await d.client.jsonPatch(devicePath(device), [uidTest(device), add], d.manager);
  }
  const token = makeEnrollmentToken(d.key, device.metadata.uid!, expiresAtMs, want.replaces);
  const secret = enrollmentSecret(device, d.secretNamespace, token, expiresAtMs);
  await d.client.apply(objectPath(core.secrets, d.secretNamespace, secret.metadata.name!), secret, d.manager);
  const expiresAt = new Date(expiresAtMs).toISOString();
  const ops: unknown[] = [uidTest(device)];
  if (!device.metadata.annotations) ops.push({ op: "add", path: "/metadata/annotations", value: {} });
  ops.push({ op: "add", path: annotationPath(enrollmentExpiresAnnotation), value: expiresAt });
  if (want.replaces) ops.push({ op: "add", path: annotationPath(enrollmentReplacesAnnotation), value: want.replaces });
  await d.client.jsonPatch(devicePath(device), ops, d.manager);
  await writeEnrollmentStatus(d, device, {
    secretNamespace: d.secretNamespace,
    secretName: secret.metadata.name!,
    expiresAt,
  });
  if (want.newRequest) {
    // The cache drops managedFields; this rare case reads them to say who asked.
    const fresh = await d.client.get<Device>(devicePath(device)).catch(() => device);
    d.events.record(
      device,
      "Warning",
      "ReenrollmentRequested",
      "Reenroll",
      `re-enrolment requested (${reenrollmentRequester(fresh)}): a one-time token for the next agent to enrol as ` +
        `this Device is in Secret ${secret.metadata.name} in namespace ${d.secretNamespace} until ${expiresAt}; the ` +
        `current key (SHA-256 ${want.replaces}) keeps working until then. Set spec.identity.reenroll to false to ` +
        "withdraw the request",
    );
  }
  return expiresAtMs;
}

/** Deletes the Device's token Secret, then says so in its status and drops the finalizer. */
async function releaseEnrollmentToken(d: EnrollmentDeps, device: Device): Promise<void> {
  const i = device.metadata.finalizers?.indexOf(enrollmentFinalizer) ?? -1;
  if (i < 0 && !device.status?.enrollment) return;
  const name = enrollmentSecretName(device.metadata.namespace!, device.metadata.name!);
  try {
    await d.client.delete(objectPath(core.secrets, d.secretNamespace, name));
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (device.status?.enrollment && !device.metadata.deletionTimestamp) await clearEnrollmentStatus(d, device);
  if (i < 0) return;
  const annotations = device.metadata.annotations ?? {};
  const ops: unknown[] = [
    uidTest(device),
    { op: "test", path: `/metadata/finalizers/${i}`, value: enrollmentFinalizer },
    { op: "remove", path: `/metadata/finalizers/${i}` },
  ];
  for (const a of [enrollmentExpiresAnnotation, enrollmentReplacesAnnotation]) {
    if (a in annotations) ops.push({ op: "remove", path: annotationPath(a) });
  }
  try {
    await d.client.jsonPatch(devicePath(device), ops, d.manager);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** status.enrollment, the operator's only field in Device status (the hub owns the rest). */
async function writeEnrollmentStatus(
  d: EnrollmentDeps,
  device: Device,
  enrollment: { secretNamespace: string; secretName: string; expiresAt: string },
): Promise<void> {
  const body = {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "Device",
    metadata: { name: device.metadata.name, namespace: device.metadata.namespace, uid: device.metadata.uid },
    status: { enrollment },
  };
  try {
    await d.client.apply(`${devicePath(device)}/status`, body, d.manager);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

async function clearEnrollmentStatus(d: EnrollmentDeps, device: Device): Promise<void> {
  const ops = [uidTest(device), { op: "remove", path: "/status/enrollment" }];
  try {
    await d.client.jsonPatch(`${devicePath(device)}/status`, ops, d.manager);
  } catch (err) {
    // Gone already (the cache was behind): the event that moves it on reconciles again.
    if (!(isNotFound(err) || (err instanceof KubeApiError && err.status === 422))) throw err;
  }
}
