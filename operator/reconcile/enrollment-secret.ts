// The leader's half of enrolment: a fresh one-time token in `<device>-enrollment` for every Device
// without an identity, renewed shortly before it expires; the hub redeems it (hub/enrollment.ts).
import { labels, managedByValue } from "../../api/constants.ts";
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { core, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import { makeEnrollmentToken } from "../hub/enrollment-token.ts";

export const enrollmentSecretName = (device: string) => `${device}-enrollment`;
/** When the current token in the Secret expires (so the leader knows when to make a new one). */
export const enrollmentExpiresAnnotation = "devicestreams.io/enrollment-expires-at";

/** When a token expiring at `expiresAtMs` is renewed: a little early, so that one read from the Secret is never about to expire. */
export function renewalDue(expiresAtMs: number, ttlMs: number): number {
  return expiresAtMs - Math.min(ttlMs / 10, 60_000);
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

/** Leader: a Device without identity whose token is missing or expired gets a new one. */
export async function ensureEnrollmentToken(
  client: KubeClient,
  device: Device,
  key: Buffer,
  ttlMs: number,
  now: number,
  manager: string,
): Promise<number | undefined> {
  if (device.spec?.identity?.publicKeySHA256 || device.metadata.deletionTimestamp) return undefined;
  const current = Number(Date.parse(device.metadata.annotations?.[enrollmentExpiresAnnotation] ?? ""));
  if (Number.isFinite(current) && now < renewalDue(current, ttlMs)) return current;
  const expiresAtMs = now + ttlMs;
  const ns = device.metadata.namespace!;
  const secret = enrollmentSecret(device, makeEnrollmentToken(key, device.metadata.uid!, expiresAtMs), expiresAtMs);
  await client.apply(objectPath(core.secrets, ns, secret.metadata.name!), secret, manager);
  await client.jsonPatch(
    objectPath({ ...deviceResource }, ns, device.metadata.name!),
    [
      { op: "test", path: "/metadata/uid", value: device.metadata.uid },
      device.metadata.annotations
        ? {
            op: "add",
            path: `/metadata/annotations/${enrollmentExpiresAnnotation.replace("/", "~1")}`,
            value: new Date(expiresAtMs).toISOString(),
          }
        : {
            op: "add",
            path: "/metadata/annotations",
            value: { [enrollmentExpiresAnnotation]: new Date(expiresAtMs).toISOString() },
          },
    ],
    manager,
  );
  return expiresAtMs;
}
