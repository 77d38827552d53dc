// The leader's half of enrolment: a fresh one-time token in `<device>-enrollment` for every Device
// without an identity, and for an enrolled one whose re-enrolment an administrator asked for
// (reenrollment.ts says when), renewed shortly before it expires; the hub redeems it
// (hub/enrollment.ts).
import { labels, managedByValue } from "../../api/constants.ts";
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { core, type KubeClient, objectPath } from "../../kube/client.ts";
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

export const enrollmentSecretName = (device: string) => `${device}-enrollment`;

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
 * as an Event on the Device, naming who set spec.identity.reenroll where the API knows. Returns
 * when the Device's token expires (undefined: it holds none, being enrolled).
 */
export async function ensureEnrollmentToken(
  client: KubeClient,
  device: Device,
  key: Buffer,
  ttlMs: number,
  now: number,
  manager: string,
  events: EventRecorder,
): Promise<number | undefined> {
  const want = enrollmentTokenWanted(device, ttlMs, now);
  if (!want) return currentTokenExpiry(device);
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
  if (want.newRequest) {
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
