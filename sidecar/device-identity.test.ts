import assert from "node:assert/strict";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCertificateAuthority, issueCertificate } from "../runtime/pki.ts";
import { loadIdentity, parseDeviceName, renewAtMs, storeCertificate } from "./device-identity.ts";

describe("device identity on the device", () => {
  it("reads --device as NAMESPACE/NAME and refuses anything else with DS_USAGE", () => {
    assert.deepEqual(parseDeviceName("factory-7/pump-3"), { namespace: "factory-7", name: "pump-3" });
    for (const bad of ["pump-3", "a/b/c", "Factory/pump", "/pump", "ns/"]) {
      assert.throws(() => parseDeviceName(bad), { code: "DS_USAGE" }, bad);
    }
  });

  it("renews at two thirds of the certificate's validity", async () => {
    const ca = await createCertificateAuthority("ca");
    const leaf = await issueCertificate(ca, { commonName: "d", usage: "client", validityMs: 3 * 3600_000 });
    const x = new (await import("node:crypto")).X509Certificate(leaf.certPem);
    const from = Date.parse(x.validFrom);
    const to = Date.parse(x.validTo);
    assert.ok(Math.abs(renewAtMs(leaf.certPem) - (from + ((to - from) * 2) / 3)) < 1000);
  });

  it("stores the certificate 0600 and loads nothing until key and certificate are both there", () => {
    const dir = mkdtempSync(join(tmpdir(), "ds-identity-"));
    assert.equal(loadIdentity(dir), undefined);
    storeCertificate(dir, "CERT");
    assert.equal(statSync(join(dir, "device.crt")).mode & 0o777, 0o600);
    assert.equal(loadIdentity(dir), undefined, "no key yet");
  });
});
