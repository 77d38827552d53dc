import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from "../runtime/pki.ts";
import { type StreamConfig, streamConfigFile } from "./contract.ts";
import { folderStamp, readStreamFolder } from "./stream-folder.ts";

const config: StreamConfig = {
  version: 1,
  stream: "ns/a",
  service: "ssh",
  credentials: [
    { role: "source", sha256: "a".repeat(64) },
    { role: "destination", sha256: "b".repeat(64) },
  ],
  serverNames: ["a.pool.test"],
};

describe("relay: a stream folder of a pool", () => {
  let dir: string;
  let cert: KeyPairPem;
  let other: KeyPairPem;
  before(async () => {
    const ca = await createCertificateAuthority("test CA");
    cert = await issueCertificate(ca, { commonName: "a", dnsNames: ["a.pool.test"], usage: "server" });
    other = await issueCertificate(ca, { commonName: "b", dnsNames: ["b.pool.test"], usage: "server" });
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ds-folder-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (c: unknown, pair: KeyPairPem = cert, key = pair.keyPem) => {
    writeFileSync(join(dir, "relay.json"), typeof c === "string" ? c : streamConfigFile(c as StreamConfig));
    writeFileSync(join(dir, "tls.crt"), pair.certPem);
    writeFileSync(join(dir, "tls.key"), key);
  };
  const reason = (c: unknown, pair?: KeyPairPem, key?: string) => {
    write(c, pair, key);
    const r = readStreamFolder(dir, "a");
    assert.equal(r.ok, false);
    return r.ok ? "" : r.reason;
  };

  it("reads a complete folder whose certificate holds its server names", () => {
    write(config);
    const r = readStreamFolder(dir, "a");
    assert.ok(r.ok);
    assert.equal(r.folder.config.stream, "ns/a");
    assert.equal(r.folder.cert.toString(), cert.certPem);
  });

  it("refuses a half-written folder, a config without serverNames, names the certificate lacks, a key of another", () => {
    writeFileSync(join(dir, "relay.json"), streamConfigFile(config));
    const half = readStreamFolder(dir, "a");
    assert.ok(!half.ok && /cannot read it/.test(half.reason));
    assert.match(reason("{ trunc"), /a\/relay\.json is not JSON/);
    assert.match(reason({ ...config, serverNames: undefined }), /needs serverNames/);
    assert.match(reason({ ...config, serverNames: ["A.pool.test"] }), /lowercase DNS names/);
    assert.match(reason({ ...config, serverNames: ["b.pool.test"] }), /not valid for serverNames b\.pool\.test/);
    assert.match(reason(config, cert, other.keyPem), /tls\.key does not fit tls\.crt/);
  });

  it("stamps the three files: a rewrite changes the stamp, a folder gone has none", () => {
    write(config);
    const first = folderStamp(dir);
    assert.equal(folderStamp(dir), first);
    writeFileSync(join(dir, "relay.json"), `${streamConfigFile(config)} `);
    assert.notEqual(folderStamp(dir), first);
    assert.equal(folderStamp(join(dir, "none")), undefined);
    mkdirSync(join(dir, "sub"));
    assert.equal(folderStamp(join(dir, "sub")), "-|-|-");
  });
});
