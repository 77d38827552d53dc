import assert from "node:assert/strict";
import { createCertificateAuthority, issueCertificate } from "./pki.ts";
import { parseRelayUri, relayFromCertificate, relayUri } from "./relay-identity.ts";

const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");

describe("relay certificate identity", () => {
  it("round-trips namespace, stream and UID through the URI SAN and refuses other shapes", () => {
    const id = { namespace: "team-a", name: "pump-ssh", uid: "0b6f7c1e-1d2a-4c8e-9f00-1234567890ab" };
    assert.equal(relayUri(id), "devicestreams://relay/team-a/pump-ssh/0b6f7c1e-1d2a-4c8e-9f00-1234567890ab");
    assert.deepEqual(parseRelayUri(relayUri(id)), id);
    for (const bad of [
      "devicestreams://device/ns/name/uid",
      "devicestreams://relay/ns/name",
      "devicestreams://relay/ns/name/uid/extra",
      "https://relay/ns/name/uid",
      "devicestreams://relay/NS/name/uid",
      "devicestreams://relay/ns/../uid",
      "devicestreams://relay/ns/a.b/uid",
      `devicestreams://relay/${"n".repeat(64)}/name/uid`,
      "devicestreams://relay/ns/name/UID",
      "devicestreams://relay/ns/name/",
    ]) {
      assert.equal(parseRelayUri(bad), undefined, bad);
    }
  });

  it("reads the relay from a certificate the CA signed; refuses another CA's and a device certificate", async () => {
    const ca = await createCertificateAuthority("operator CA");
    const other = await createCertificateAuthority("other CA");
    const uri = relayUri({ namespace: "ns", name: "s", uid: "u-1" });
    const relay = await issueCertificate(ca, {
      commonName: "s-relay.ns.svc",
      dnsNames: ["s-relay.ns.svc"],
      uris: [uri],
      usage: "both",
      validityMs: 60_000,
    });
    assert.deepEqual(await relayFromCertificate(der(relay.certPem), ca.certPem), {
      namespace: "ns",
      name: "s",
      uid: "u-1",
    });
    await assert.rejects(relayFromCertificate(der(relay.certPem), other.certPem), /not signed by the operator's CA/);
    const device = await issueCertificate(ca, {
      commonName: "ns/dev",
      uris: ["devicestreams://device/ns/dev/u-2"],
      usage: "client",
      validityMs: 60_000,
    });
    await assert.rejects(relayFromCertificate(der(device.certPem), ca.certPem), /names no relay/);
  });
});
