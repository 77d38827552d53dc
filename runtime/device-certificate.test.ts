import assert from "node:assert/strict";
import { deviceFromCertificate, deviceUri, parseDeviceUri } from "./device-certificate.ts";
import { createCertificateAuthority, createCertificateRequest, signCertificateRequest } from "./pki.ts";

const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");

describe("device certificate identity", () => {
  it("round-trips namespace, name and UID through the URI SAN and refuses other shapes", () => {
    const id = { namespace: "factory-7", name: "pump-3", uid: "0b6f7c1e-1d2a-4c8e-9f00-1234567890ab" };
    assert.deepEqual(parseDeviceUri(deviceUri(id)), id);
    for (const bad of [
      "devicestreams://device/ns/name",
      "devicestreams://device/ns/name/uid/extra",
      "https://device/ns/name/uid",
      "devicestreams://device/NS/name/uid",
      "devicestreams://device/ns/../uid",
      "devicestreams://device/a.b/name/uid",
      `devicestreams://device/${"n".repeat(64)}/name/uid`,
      "devicestreams://device/ns/name/UID",
    ]) {
      assert.equal(parseDeviceUri(bad), undefined, bad);
    }
  });

  it("reads the device from a certificate signed by the CA and refuses one from another CA", async () => {
    const ca = await createCertificateAuthority("hub CA");
    const other = await createCertificateAuthority("other CA");
    const { csrPem } = await createCertificateRequest("ns/dev");
    const uri = deviceUri({ namespace: "ns", name: "dev", uid: "u-1" });
    const cert = await signCertificateRequest(ca, csrPem, { commonName: "ns/dev", uris: [uri], usage: "client" });
    const id = await deviceFromCertificate(der(cert), ca.certPem);
    assert.equal(id.namespace, "ns");
    assert.equal(id.name, "dev");
    assert.equal(id.uid, "u-1");
    assert.match(id.publicKeySha256, /^[0-9a-f]{64}$/);
    await assert.rejects(deviceFromCertificate(der(cert), other.certPem), /not signed by the hub's CA/);
    const noUri = await signCertificateRequest(ca, csrPem, { commonName: "ns/dev", usage: "client" });
    await assert.rejects(deviceFromCertificate(der(noUri), ca.certPem), /names no device/);
  });
});
