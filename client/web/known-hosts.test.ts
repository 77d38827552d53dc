// known_hosts as OpenSSH writes and reads it: the keys and hashed names come from OpenSSH's own
// ssh-keygen, and a line we add must be found by `ssh-keygen -F`.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
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

describe("known_hosts", () => {
  let dir: string;
  const keys: Record<string, { line: string; blob: Buffer }> = {};
  const key = (name: string, type = "ed25519") => {
    const file = join(dir, name);
    execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", name, "-f", file]);
    const line = readFileSync(`${file}.pub`, "utf8").trim();
    keys[name] = { line, blob: Buffer.from(line.split(" ")[1]!, "base64") };
    return keys[name];
  };
  const pub = (name: string) => keys[name]!.line.split(" ").slice(0, 2).join(" ");

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "ds-known-hosts-"));
    key("a");
    key("b");
    key("rsa", "rsa");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the key type from the blob and writes the fingerprint as ssh-keygen -l does", () => {
    assert.equal(keyType(keys.a!.blob), "ssh-ed25519");
    assert.equal(keyType(keys.rsa!.blob), "ssh-rsa");
    const fromSsh = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", join(dir, "a.pub")], { encoding: "utf8" });
    assert.equal(fromSsh.split(" ")[1], fingerprint(keys.a!.blob));
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

  it("matches hashed names: our own HMAC-SHA1 and lines hashed by ssh-keygen -H", () => {
    const salt = randomBytes(20);
    const hash = createHmac("sha1", salt).update("edge-1").digest();
    const field = `|1|${salt.toString("base64")}|${hash.toString("base64")}`;
    assert.ok(hostMatches(field, "edge-1"));
    assert.ok(hostMatches(field, "EDGE-1"), "names are lowered before hashing");
    assert.ok(!hostMatches(field, "edge-2"));
    assert.ok(!hostMatches(`|2|${salt.toString("base64")}|${hash.toString("base64")}`, "edge-1"), "unknown scheme");

    const file = join(dir, "hashed_known_hosts");
    writeFileSync(file, `edge-1 ${pub("a")}\n[edge-2]:2222 ${pub("b")}\n`);
    execFileSync("ssh-keygen", ["-q", "-H", "-f", file], { stdio: "ignore" }); // it warns about the .old copy
    const entries = parseKnownHosts(readFileSync(file, "utf8"));
    assert.equal(entries.length, 2);
    assert.ok(
      entries.every((e) => e.hosts.startsWith("|1|")),
      "ssh-keygen hashed every name",
    );
    assert.deepEqual(checkHostKey(entries, "edge-1", keys.a!.blob), { status: "known", line: 1 });
    assert.deepEqual(checkHostKey(entries, "[edge-2]:2222", keys.b!.blob), { status: "known", line: 2 });
    assert.equal(checkHostKey(entries, "edge-1", keys.b!.blob).status, "changed");
    assert.equal(checkHostKey(entries, "edge-3", keys.a!.blob).status, "unknown");
  });

  it("says known, unknown, changed (never accepted) and revoked", () => {
    const entries = parseKnownHosts(
      [
        "# a comment",
        "",
        `edge-1 ${pub("a")}`,
        `@cert-authority *.example ${pub("b")}`,
        `@revoked * ${pub("rsa")}`,
        "garbage line",
        `edge-2 ssh-ed25519 not*base64`,
        `edge-4,edge-5 ${pub("b")} a comment with spaces`,
        "",
      ].join("\n"),
    );
    assert.equal(entries.length, 4, "comments, blanks and malformed lines are skipped");
    assert.deepEqual(checkHostKey(entries, "edge-1", keys.a!.blob), { status: "known", line: 3 });
    assert.deepEqual(checkHostKey(entries, "edge-5", keys.b!.blob), { status: "known", line: 8 });
    assert.deepEqual(checkHostKey(entries, "edge-1", keys.b!.blob), {
      status: "changed",
      lines: [3],
      knownTypes: ["ssh-ed25519"],
    });
    assert.deepEqual(checkHostKey(entries, "edge-9", keys.a!.blob), { status: "unknown" });
    // A certificate authority's key is no host key: a host it signs for is still unknown here.
    assert.deepEqual(checkHostKey(entries, "x.example", keys.b!.blob), { status: "unknown" });
    assert.deepEqual(checkHostKey(entries, "edge-9", keys.rsa!.blob), { status: "revoked", line: 5 });
    assert.deepEqual(knownTypes(entries, "edge-1"), ["ssh-ed25519"]);
    assert.deepEqual(knownTypes(entries, "edge-9"), []);
  });

  it("adds a line ssh finds, making the folder 0700 and the file 0600", () => {
    const file = join(dir, "new", ".ssh", "known_hosts");
    addKnownHost(file, "edge-7", keys.a!.blob);
    assert.equal(statSync(join(dir, "new", ".ssh")).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    // A file without a final newline gets one before the added line.
    writeFileSync(file, readFileSync(file, "utf8").trimEnd());
    addKnownHost(file, "edge-8", keys.rsa!.blob);
    const found = execFileSync("ssh-keygen", ["-F", "edge-8", "-f", file], { encoding: "utf8" });
    assert.match(found, /Host edge-8 found: line 2/);
    assert.equal(readFileSync(file, "utf8"), `edge-7 ${pub("a")}\nedge-8 ${pub("rsa")}\n`);
    assert.deepEqual(checkHostKey(parseKnownHosts(readFileSync(file, "utf8")), "edge-8", keys.rsa!.blob), {
      status: "known",
      line: 2,
    });
  });
});
