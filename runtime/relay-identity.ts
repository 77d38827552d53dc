// Who a relay certificate speaks for: `devicestreams://relay/<namespace>/<stream>/<uid>`. The hub
// answers a relay's access reviews only about the stream its certificate names, and the UID keeps
// a stream deleted and created again under the same name from reviving an old relay's certificate.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

export interface RelayIdentity {
  /** The DeviceStream's namespace, name and UID. */
  namespace: string;
  name: string;
  uid: string;
}

const scheme = "devicestreams://relay/";
const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const uidPattern = /^[a-z0-9][-a-z0-9]{0,62}$/;

export function relayUri(id: RelayIdentity): string {
  return `${scheme}${id.namespace}/${id.name}/${id.uid}`;
}

export function parseRelayUri(uri: string): RelayIdentity | undefined {
  if (!uri.startsWith(scheme)) return undefined;
  const parts = uri.slice(scheme.length).split("/");
  if (parts.length !== 3) return undefined;
  const [namespace, name, uid] = parts as [string, string, string];
  // The operator signed only valid names; checked again because they become API paths.
  if (!dnsLabel.test(namespace) || !dnsLabel.test(name) || !uidPattern.test(uid)) return undefined;
  return { namespace, name, uid };
}

/**
 * The relay a certificate names, after checking its signature and dates against the CA: the
 * hub's port also admits callers without a certificate (enrolment), so TLS alone is not the check.
 * Throws with the reason when it is no valid relay certificate (a device's, or another CA's).
 */
export async function relayFromCertificate(certDer: Buffer, caPem: string, now = new Date()): Promise<RelayIdentity> {
  const cert = new x509.X509Certificate(certDer);
  const ca = new x509.X509Certificate(caPem);
  if (!(await cert.verify({ publicKey: ca.publicKey, date: now }))) {
    throw new Error("the certificate is not signed by the operator's CA or is outside its validity period");
  }
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san?.names.items.filter((n) => n.type === "url").map((n) => n.value) ?? [];
  const id = uris.map(parseRelayUri).find((x) => x !== undefined);
  if (!id) throw new Error("the certificate names no relay (no devicestreams://relay/ URI)");
  return id;
}
