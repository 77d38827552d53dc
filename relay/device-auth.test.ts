import assert from "node:assert/strict";
import { deviceUri } from "../runtime/device-certificate.ts";
import {
  createCertificateAuthority,
  createCertificateRequest,
  type KeyPairPem,
  publicKeySha256,
  signCertificateRequest,
} from "../runtime/pki.ts";
import { DeviceAuthenticator } from "./device-auth.ts";

const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");

describe("device authentication at the relay", () => {
  let ca: KeyPairPem;
  const id = { namespace: "factory", name: "edge-1", uid: "0b6f7c1e-1d2a" };
  const deviceCert = async (who = id, validityMs = 3600_000, issuer?: KeyPairPem) => {
    const { csrPem } = await createCertificateRequest(`${who.namespace}/${who.name}`);
    return signCertificateRequest(issuer ?? ca, csrPem, {
      commonName: `${who.namespace}/${who.name}`,
      uris: [deviceUri(who)],
      usage: "client",
      validityMs,
    });
  };
  before(async () => {
    ca = await createCertificateAuthority("hub CA");
  });

  it("admits the bound Device's certificate and names who it is", async () => {
    const cert = await deviceCert();
    const bound = { namespace: id.namespace, name: id.name, uid: id.uid, publicKeySHA256: publicKeySha256(cert) };
    const auth = new DeviceAuthenticator(ca.certPem);
    assert.deepEqual(await auth.check(bound, der(cert)), {
      ok: true,
      identity: `factory/edge-1/${id.uid}/${bound.publicKeySHA256}`,
    });
    // By name only (the Device did not exist yet when the stream was made): any UID of that name.
    assert.equal((await auth.check({ namespace: "factory", name: "edge-1" }, der(cert))).ok, true);
  });

  it("refuses no certificate, a TLS-refused one, another Device, another UID, another key, another CA", async () => {
    const auth = new DeviceAuthenticator(ca.certPem);
    const cert = await deviceCert();
    const bound = { ...id, publicKeySHA256: publicKeySha256(cert) };
    const code = async (p: Promise<{ ok: boolean; code?: string; message?: string }>) => {
      const r = await p;
      return r.ok ? "ok" : `${r.code}: ${r.message}`;
    };
    assert.match(
      await code(auth.check(bound, undefined)),
      /^DS_DEVICE_IDENTITY_REQUIRED: .*destination token is not accepted/,
    );
    assert.match(await code(auth.check(bound, undefined, "CERT_HAS_EXPIRED")), /^DS_DEVICE_CERT_INVALID: .*it expired/);
    assert.match(
      await code(auth.check(bound, der(await deviceCert({ ...id, name: "edge-2" })))),
      /^DS_DEVICE_IDENTITY_MISMATCH: the certificate names Device "edge-2" in namespace "factory"/,
    );
    assert.match(
      await code(auth.check(bound, der(await deviceCert({ ...id, uid: "another-uid" })))),
      /^DS_DEVICE_IDENTITY_MISMATCH: .*UID another-uid/,
    );
    assert.match(
      await code(auth.check(bound, der(await deviceCert()))),
      /^DS_DEVICE_IDENTITY_MISMATCH: the certificate's key/,
    );
    const other = await createCertificateAuthority("another cluster");
    assert.match(
      await code(auth.check(bound, der(await deviceCert(id, 3600_000, other)))),
      /^DS_DEVICE_CERT_INVALID: .*not signed by the hub's CA/,
    );
  });

  it("refuses a certificate past its end even when it was admitted before (cached)", async () => {
    const auth = new DeviceAuthenticator(ca.certPem);
    const cert = await deviceCert(id, 60_000);
    const bound = { ...id, publicKeySHA256: publicKeySha256(cert) };
    assert.equal((await auth.check(bound, der(cert))).ok, true);
    const later = await auth.check(bound, der(cert), undefined, Date.now() + 120_000);
    assert.equal(later.ok, false);
    assert.match((later as { message: string }).message, /expired at/);
  });
});
