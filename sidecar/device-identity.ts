// The device's own identity in --state-dir: a private key made here (never sent anywhere) and the
// certificate the hub issued for it. First start enrols with the one-time token; later starts
// use what is stored. Files are written 0600, atomically (temp file + rename).
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseObjectKey, quoteName } from "../kube/names.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { certificateValidity, createCertificateRequest, createCertificateRequestForKey } from "../runtime/pki.ts";
import { callError, hubFromFlags } from "../transport/call-error.ts";
import type { HubClient } from "../transport/hub-client.ts";

export interface StoredIdentity {
  keyPem: string;
  certPem: string;
}

export interface DeviceName {
  namespace: string;
  name: string;
}

export function parseDeviceName(value: string): DeviceName {
  const id = parseObjectKey(value);
  if (!id) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--device ${quoteName(value)} must be NAMESPACE/NAME, e.g. factory-7/pump-3 (a Kubernetes namespace and Device name)`,
    );
  }
  return id;
}

const files = (dir: string) => ({ key: join(dir, "device.key"), cert: join(dir, "device.crt") });

function writePrivate(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function loadIdentity(dir: string): StoredIdentity | undefined {
  const f = files(dir);
  if (!existsSync(f.key) || !existsSync(f.cert)) return undefined;
  return { keyPem: readFileSync(f.key, "utf8"), certPem: readFileSync(f.cert, "utf8") };
}

export function storeCertificate(dir: string, certPem: string): void {
  writePrivate(files(dir).cert, certPem);
}

/** Enrols once: the key is made (or reused, if an earlier try stored it) here and stays here. */
export async function enrollDevice(
  hub: Pick<HubClient, "enroll">,
  dir: string,
  device: DeviceName,
  tokenFile: string | undefined,
): Promise<StoredIdentity> {
  if (!tokenFile) {
    throw new DeviceStreamsError(
      "DS_ENROLLMENT_TOKEN_REQUIRED",
      `no device certificate in ${dir} and no --enrollment-token-file: give the token from the Secret that ` +
        `Device ${device.name}'s status.enrollment names (an administrator reads it) for the first start`,
    );
  }
  let token: string;
  try {
    token = readFileSync(tokenFile, "utf8").trim();
  } catch (err) {
    throw new DeviceStreamsError("DS_ENROLLMENT_TOKEN_REQUIRED", `cannot read ${tokenFile}: ${(err as Error).message}`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = files(dir);
  const commonName = `${device.namespace}/${device.name}`;
  let keyPem: string;
  let csrPem: string;
  if (existsSync(f.key)) {
    keyPem = readFileSync(f.key, "utf8");
    csrPem = await createCertificateRequestForKey(commonName, keyPem);
  } else {
    ({ keyPem, csrPem } = await createCertificateRequest(commonName));
    writePrivate(f.key, keyPem);
  }
  let res: Awaited<ReturnType<HubClient["enroll"]>>;
  try {
    res = await hub.enroll({ token, namespace: device.namespace, name: device.name, csrPem });
  } catch (err) {
    throw callError(err as { code: number; details: string }, hubFromFlags);
  }
  const certPem = res.certificateChainPem ?? "";
  if (!certPem) throw new DeviceStreamsError("DS_PROTOCOL", "the hub answered enrolment without a certificate");
  storeCertificate(dir, certPem);
  return { keyPem, certPem };
}

/** When to renew: at 2/3 of the certificate's validity, well before it runs out. */
export function renewAtMs(certPem: string): number {
  const { notBefore, notAfter } = certificateValidity(certPem);
  return notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3;
}
