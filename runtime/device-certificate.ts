// Who a device certificate speaks for. The URI SAN names namespace, name AND the Device's UID, so
// a Device deleted and created again under the same name never revives an old certificate.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { dns1123LabelError, dns1123SubdomainError } from "../kube/names.ts";
import { publicKeySha256 } from "./pki.ts";

export interface DeviceIdentity {
  namespace: string;
  name: string;
  uid: string;
}

const scheme = "devicestreams://device/";

export function deviceUri(id: DeviceIdentity): string {
  return `${scheme}${id.namespace}/${id.name}/${id.uid}`;
}

export function parseDeviceUri(uri: string): DeviceIdentity | undefined {
  if (!uri.startsWith(scheme)) return undefined;
  const parts = uri.slice(scheme.length).split("/");
  if (parts.length !== 3) return undefined;
  const [namespace, name, uid] = parts as [string, string, string];
  // The hub signed only valid names; checked again because they become cache keys and paths.
  if (dns1123LabelError(namespace) || dns1123SubdomainError(name) || !/^[a-z0-9][-a-z0-9]{0,62}$/.test(uid)) {
    return undefined;
  }
  return { namespace, name, uid };
}

export interface PresentedCertificate extends DeviceIdentity {
  publicKeySha256: string;
  notAfter: Date;
}

/**
 * Reads the identity from a device certificate that TLS already chained to our CA, and checks
 * the signature and dates again here: the hub's port also admits callers without a certificate
 * (enrolment), so the TLS layer alone must not be the only check.
 */
export async function deviceFromCertificate(
  certDer: Buffer,
  caPem: string,
  now = new Date(),
): Promise<PresentedCertificate> {
  const cert = new x509.X509Certificate(certDer);
  const ca = new x509.X509Certificate(caPem);
  if (!(await cert.verify({ publicKey: ca.publicKey, date: now }))) {
    throw new Error("the certificate is not signed by the hub's CA or is outside its validity period");
  }
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uri = san?.names.items.find((n) => n.type === "url")?.value;
  const id = uri ? parseDeviceUri(uri) : undefined;
  if (!id) throw new Error("the certificate names no device (no devicestreams://device/ URI)");
  return { ...id, publicKeySha256: publicKeySha256(cert.toString("pem")), notAfter: cert.notAfter };
}
