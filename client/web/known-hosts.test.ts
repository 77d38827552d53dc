// known_hosts as OpenSSH writes and reads it. The keys, their fingerprints and the hashed lines
// below were made by OpenSSH's ssh-keygen (-t, -l -E sha256, -H), so these checks need no tool at
// run time; test/dataplane/web-ssh-session.test.ts checks the lines we add with `ssh-keygen -F`.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  addKnownHost,
  checkHostKey,
  fingerprint,
  hostMatches,
  keyType,
  knownTypes,
  parseKnownHosts,
} from "./known-hosts.ts";

/** `ssh-keygen -t ed25519` / `-t rsa -b 2048`, public halves (type and base64). */
const pubs = {
  a: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXSjojS2xebxxKyOV5CSjZpGltgBzPOqMUdyXNTy2Hp",
  b: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILd7QFqw5Myrdx83hne2KlJIocpo5AoyXeJ5kV2/p/i+",
  rsa: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3R9IpyMX2C7L2VorAVZe8AFlQLS2Y3Sg8X+JJZdSuPGVwXJwKK6gAxYL7qVnCj4A8mSpUX+gG1nLy3cPlT45cb1o1jh6OVqFu/CdSzuerCCbcrogb5QM1295XjjAF5IYFwWwdgdMO75nkdIhiy8vTESnc+zc1tLHGu63+r0SR3rvshUmXIte0pWxU+VmosWPcNYSY96n3CMPT7TusVP6q/ZzFeIOlIhNC7I7EkgZR10famAn/+Qgn4mBHjMJH2cgMWvGgm42KYgYSDXc3ZArmQOGe5dUU+3cgYqDTkXxiboRIZs88CVBpp3d4zQ+AZAD2vaUTy/Th6QKzeXClrlCX",
};
const blob = (name: keyof typeof pubs) => Buffer.from(pubs[name].split(" ")[1]!, "base64");
/** `ssh-keygen -H` of "edge-1 <a>" and "[edge-2]:2222 <b>". */
const hashedFile = [
  `|1|mxF7CdHfM6kW1RD70kZkQmXTn94=|6NHe1Q9Iu/HIZdHBlHAYc+Iuia4= ${pubs.a}`,
  `|1|1Vl/KTovqEBVPU6I1muksHdDskE=|VBsmtWy2RsDlT7XfG3DzH6X0Lns= ${pubs.b}`,
  "",
].join("\n");

describe("known_hosts", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "ds-known-hosts-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the key type from the blob and writes the fingerprint as ssh-keygen -l does", () => {
    assert.equal(keyType(blob("a")), "ssh-ed25519");
    assert.equal(keyType(blob("rsa")), "ssh-rsa");
    // `ssh-keygen -l -E sha256` of the same keys.
    assert.equal(fingerprint(blob("a")), "SHA256:ySbcYqb2SPCb6IC7my+B1USEDvjmE87O8qDtnRwTu8A");
    assert.equal(fingerprint(blob("rsa")), "SHA256:keaMM4fcaHOjE+5jT/E/3BnpYD6p2LR0KDPmY6sisA4");
    assert.throws(() => keyType(Buffer.from([0, 0])), /too short/);
    assert.throws(() => keyType(Buffer.from([0, 0, 0, 200, 1])), /no key type/);
  });

  it("matches plain names, lists, wildcards, negations and [host]:port as ssh does", () => {
    assert.ok(hostMatches("edge-1", "edge-1"));
    assert.ok(hostMatches("other,EDGE-1", "edge-1"), "a list, case-insensitive");
    assert.ok(!hostMatches("edge-10", "edge-1"));
    assert.ok(hostMatches("edge-*", "edge-1"));
    assert.ok(hostMatches("edge-?", "edge-1"));
    assert.ok(!hostMatches("edge-?", "edge-12"));
    assert.ok(!hostMatches("edge-*,!edge-1", "edge-1"), "a matching negation excludes the line");
    assert.ok(hostMatches("edge-*,!edge-2", "edge-1"));
    assert.ok(!hostMatches("!edge-1", "edge-2"), "a negation alone matches nothing");
    assert.ok(hostMatches("[edge-1]:2222", "[edge-1]:2222"));
    assert.ok(!hostMatches("[edge-1]:2222", "edge-1"));
    assert.ok(!hostMatches("edge.1", "edgex1"), "a dot is no wildcard");
  });

  it("matches hashed names: our own HMAC-SHA1, and lines ssh-keygen -H hashed", () => {
    const salt = randomBytes(20);
    const hash = createHmac("sha1", salt).update("edge-1").digest();
    const field = `|1|${salt.toString("base64")}|${hash.toString("base64")}`;
    assert.ok(hostMatches(field, "edge-1"));
    assert.ok(hostMatches(field, "EDGE-1"), "names are lowered before hashing");
    assert.ok(!hostMatches(field, "edge-2"));
    assert.ok(!hostMatches(`|2|${salt.toString("base64")}|${hash.toString("base64")}`, "edge-1"), "unknown scheme");

    const entries = parseKnownHosts(hashedFile);
    assert.equal(entries.length, 2);
    assert.deepEqual(checkHostKey(entries, "edge-1", blob("a")), { status: "known", line: 1 });
    assert.deepEqual(checkHostKey(entries, "[edge-2]:2222", blob("b")), { status: "known", line: 2 });
    assert.equal(checkHostKey(entries, "edge-1", blob("b")).status, "changed");
    assert.equal(checkHostKey(entries, "edge-3", blob("a")).status, "unknown");
  });

  it("says known, unknown, changed (never accepted) and revoked", () => {
    const entries = parseKnownHosts(
      [
        "# a comment",
        "",
        `edge-1 ${pubs.a}`,
        `@cert-authority *.example ${pubs.b}`,
        `@revoked * ${pubs.rsa}`,
        "garbage line",
        `edge-2 ssh-ed25519 not*base64`,
        `edge-4,edge-5 ${pubs.b} a comment with spaces`,
        "",
      ].join("\n"),
    );
    assert.equal(entries.length, 4, "comments, blanks and malformed lines are skipped");
    assert.deepEqual(checkHostKey(entries, "edge-1", blob("a")), { status: "known", line: 3 });
    assert.deepEqual(checkHostKey(entries, "edge-5", blob("b")), { status: "known", line: 8 });
    assert.deepEqual(checkHostKey(entries, "edge-1", blob("b")), {
      status: "changed",
      lines: [3],
      knownTypes: ["ssh-ed25519"],
    });
    assert.deepEqual(checkHostKey(entries, "edge-9", blob("a")), { status: "unknown" });
    // A certificate authority's key is no host key: a host it signs for is still unknown here.
    assert.deepEqual(checkHostKey(entries, "x.example", blob("b")), { status: "unknown" });
    assert.deepEqual(checkHostKey(entries, "edge-9", blob("rsa")), { status: "revoked", line: 5 });
    assert.deepEqual(knownTypes(entries, "edge-1"), ["ssh-ed25519"]);
    assert.deepEqual(knownTypes(entries, "edge-9"), []);
  });

  it("adds a line as ssh writes it, making the folder 0700 and the file 0600", () => {
    const file = join(dir, "new", ".ssh", "known_hosts");
    addKnownHost(file, "edge-7", blob("a"));
    assert.equal(statSync(join(dir, "new", ".ssh")).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    // A file without a final newline gets one before the added line.
    writeFileSync(file, readFileSync(file, "utf8").trimEnd());
    addKnownHost(file, "edge-8", blob("rsa"));
    assert.equal(readFileSync(file, "utf8"), `edge-7 ${pubs.a}\nedge-8 ${pubs.rsa}\n`);
    assert.deepEqual(checkHostKey(parseKnownHosts(readFileSync(file, "utf8")), "edge-8", blob("rsa")), {
      status: "known",
      line: 2,
    });
  });
});
