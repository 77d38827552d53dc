// Which keys the terminal offers: keys in OpenSSH's format (made with ssh2's generator, with and
// without a passphrase), a file that is no key, and no keys at all.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import type { DeviceStreamsError } from "../../runtime/errors.ts";
import { sshAuth } from "./ssh-auth.ts";

describe("browser terminal SSH keys", () => {
  let dir: string;
  const keygen = (file: string, type: "ed25519" | "ecdsa" | "rsa" = "ed25519", passphrase = "") => {
    const opts = { comment: "test", ...(type === "ecdsa" ? { bits: 256 } : type === "rsa" ? { bits: 2048 } : {}) };
    const pair = ssh2.utils.generateKeyPairSync(
      type,
      passphrase ? { ...opts, passphrase, cipher: "aes256-ctr", rounds: 4 } : opts,
    );
    writeFileSync(file, pair.private, { mode: 0o600 });
  };
  const noIdentity = (why: RegExp) => (err: DeviceStreamsError) =>
    err.code === "DS_SSH_NO_IDENTITY" && why.test(err.message);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "ds-ssh-auth-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("--identity alone when given (with the agent, not the default keys)", () => {
    const ssh = join(dir, "home1");
    mkdirSync(ssh);
    keygen(join(ssh, "id_ed25519"));
    keygen(join(dir, "chosen"), "ecdsa");
    const a = sshAuth({ user: "pat", identity: join(dir, "chosen"), sshDir: ssh });
    assert.deepEqual(
      a.methods.map((m) => m.type),
      ["publickey"],
    );
    assert.deepEqual(a.offered, [`${join(dir, "chosen")} (ecdsa-sha2-nistp256)`]);
    assert.equal(a.methods[0]!.username, "pat");
    const b = sshAuth({ user: "pat", identity: join(dir, "chosen"), agentSocket: "/run/agent.sock", sshDir: ssh });
    assert.deepEqual(
      b.methods.map((m) => m.type),
      ["publickey", "agent"],
    );
    assert.equal(b.offered[1], "the agent at SSH_AUTH_SOCK=/run/agent.sock");
  });

  it("without --identity: the agent, then the default keys that need no passphrase", () => {
    const ssh = join(dir, "home2");
    mkdirSync(ssh);
    keygen(join(ssh, "id_ed25519"), "ed25519", "secret words");
    keygen(join(ssh, "id_rsa"), "rsa");
    writeFileSync(join(ssh, "id_ecdsa"), "not a key\n");
    const a = sshAuth({ user: "pat", agentSocket: "/run/agent.sock", sshDir: ssh });
    assert.deepEqual(
      a.methods.map((m) => m.type),
      ["agent", "publickey"],
    );
    assert.deepEqual(a.offered.slice(1), [`${join(ssh, "id_rsa")} (ssh-rsa)`]);
    assert.equal(a.skipped.length, 2);
    assert.match(a.skipped[0]!, /id_ed25519: has a passphrase \(add it to your agent with ssh-add\)/);
    assert.match(a.skipped[1]!, /id_ecdsa: /);
  });

  it("refuses to start with nothing to offer, or an --identity it cannot use, saying what to do", () => {
    const empty = join(dir, "empty");
    mkdirSync(empty);
    assert.throws(
      () => sshAuth({ user: "pat", sshDir: empty }),
      noIdentity(
        /no SSH key to offer: no --identity, no agent \(SSH_AUTH_SOCK is unset\), no usable key in .*empty; pass --identity FILE/,
      ),
    );
    const locked = join(dir, "home3");
    mkdirSync(locked);
    keygen(join(locked, "id_ed25519"), "ed25519", "secret words");
    assert.throws(
      () => sshAuth({ user: "pat", sshDir: locked }),
      noIdentity(/no usable key in .*home3 \(.*id_ed25519: has a passphrase/),
    );
    assert.throws(
      () => sshAuth({ user: "pat", identity: join(locked, "id_ed25519"), sshDir: locked }),
      noIdentity(/protected by a passphrase: add it to your agent \(`ssh-add .*id_ed25519`\)/),
    );
    assert.throws(
      () => sshAuth({ user: "pat", identity: join(dir, "missing"), sshDir: locked }),
      noIdentity(/--identity .*missing: ENOENT.*; pass a readable OpenSSH or PEM private key/),
    );
  });
});
