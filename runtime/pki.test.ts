import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import {
  certificateExpiry,
  createCertificateAuthority,
  createCertificateRequest,
  issueCertificate,
  signCertificateRequest,
} from "./pki.ts";

describe("pki", () => {
  it("issues a server certificate that verifies against its CA and names its SANs", async () => {
    const ca = await createCertificateAuthority("test-ca");
    const leaf = await issueCertificate(ca, {
      commonName: "relay",
      dnsNames: ["relay.ns.svc"],
      ipAddresses: ["127.0.0.1"],
      usage: "server",
    });
    const cert = new X509Certificate(leaf.certPem);
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.ok(cert.checkHost("relay.ns.svc"));
    assert.ok(cert.checkIP("127.0.0.1"));
    assert.equal(cert.checkHost("other.ns.svc"), undefined);
    const other = await createCertificateAuthority("other-ca");
    assert.equal(cert.verify(new X509Certificate(other.certPem).publicKey), false);
  });

  it("signs a CSR whose key stays with the requester, and rejects a tampered one", async () => {
    const ca = await createCertificateAuthority("test-ca");
    const { csrPem, keyPem } = await createCertificateRequest("device-a");
    const certPem = await signCertificateRequest(ca, csrPem, {
      commonName: "ns/device-a",
      usage: "client",
      validityMs: 3600_000,
    });
    assert.ok(keyPem.includes("PRIVATE KEY"));
    assert.match(new X509Certificate(certPem).subject, /CN=ns\/device-a/);
    assert.ok(certificateExpiry(certPem).getTime() <= Date.now() + 3600_000);
    const lines = csrPem.split("\n");
    const body = lines[3]!;
    lines[3] = body.slice(0, 10) + (body[10] === "A" ? "B" : "A") + body.slice(11);
    await assert.rejects(signCertificateRequest(ca, lines.join("\n"), { commonName: "x", usage: "client" }));
  });
});
