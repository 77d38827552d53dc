import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import tls, { type SecureContext } from "node:tls";
import { createCertificateAuthority, issueCertificate } from "../runtime/pki.ts";
import { ServerNameRefused, SniContexts } from "./sni-contexts.ts";

describe("relay: TLS contexts by server name (pool mode)", () => {
  it("answers a known name with its stream's context, refuses others, and keeps only the recent few", async () => {
    const ca = await createCertificateAuthority("test CA");
    const pair = await issueCertificate(ca, { commonName: "a", dnsNames: ["a.test"], usage: "server" });
    const refused: string[] = [];
    const names: Record<string, string> = { "a.test": "a", "b.test": "b", "c.test": "c" };
    const sni = new SniContexts({ maxCached: 2, idFor: (n) => names[n], onRefused: (r) => refused.push(r) });
    for (const id of ["a", "b", "c"]) sni.set(id, Buffer.from(pair.certPem), Buffer.from(pair.keyPem));
    assert.equal(sni.cached, 0, "contexts are built at a handshake, not before");
    const ask = (name: string) =>
      new Promise<{ err: Error | null; context?: SecureContext }>((resolve) =>
        sni.callback(name, (err, context) => resolve({ err, context })),
      );
    const a = await ask("a.test");
    assert.equal(a.err, null);
    assert.ok(a.context);
    assert.equal((await ask("a.test")).context, a.context, "kept for the next handshake");
    await ask("b.test");
    await ask("c.test");
    assert.equal(sni.cached, 2, "the least recently used context is dropped");
    const unknown = await ask("x.test");
    assert.ok(unknown.err instanceof ServerNameRefused);
    sni.delete("b");
    assert.ok((await ask("b.test")).err instanceof ServerNameRefused, "a removed stream's name is refused");
    assert.deepEqual(refused, ["unknown_server_name", "unknown_server_name"]);
    sni.set("c", Buffer.from(pair.certPem), Buffer.from("not a key"));
    assert.ok((await ask("c.test")).err, "a context that cannot be built ends the handshake");
  });
});

describe("relay: device certificates through a stream's TLS context", () => {
  it("a context chosen by server name verifies client certificates against the device CA", async () => {
    const serving = await createCertificateAuthority("serving CA");
    const devices = await createCertificateAuthority("device CA");
    const stranger = await createCertificateAuthority("another CA");
    const pair = await issueCertificate(serving, { commonName: "a", dnsNames: ["a.test"], usage: "server" });
    const device = await issueCertificate(devices, { commonName: "d", usage: "client" });
    const other = await issueCertificate(stranger, { commonName: "x", usage: "client" });
    const sni = new SniContexts({
      clientCaPem: devices.certPem,
      idFor: (n) => (n === "a.test" ? "a" : undefined),
      onRefused: () => {},
    });
    sni.set("a", Buffer.from(pair.certPem), Buffer.from(pair.keyPem));
    // As relay/server.ts asks: a certificate requested, not required (the service side has none).
    const server = tls.createServer({ SNICallback: sni.callback, requestCert: true, rejectUnauthorized: false });
    const verdicts: boolean[] = [];
    server.on("secureConnection", (s) => {
      verdicts.push(s.authorized);
      s.end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const dial = (client?: { certPem: string; keyPem: string }) =>
      new Promise<void>((resolve, reject) => {
        const s = tls.connect({
          host: "127.0.0.1",
          port,
          servername: "a.test",
          ca: serving.certPem,
          ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
        });
        s.once("secureConnect", () => s.once("close", () => resolve()).resume());
        s.once("error", reject);
      });
    try {
      await dial(device);
      await dial(other);
      await dial();
    } finally {
      server.close();
    }
    assert.deepEqual(verdicts, [true, false, false]);
  });
});
