// The browser terminal's SSH session against a real OpenSSH sshd (a TCP socket stands in for the
// tunnel, which test/e2e/web-terminal.test.ts covers): host keys known, hashed, unknown (accepted
// or declined), changed and revoked; keys sshd refuses; a PTY that takes the page's size.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { fingerprint } from "../../client/web/known-hosts.ts";
import { sshAuth } from "../../client/web/ssh-auth.ts";
import { hostKeyPreference, openShell, type Shell, type UnknownHostKey } from "../../client/web/ssh-session.ts";
import type { DeviceStreamsError } from "../../runtime/errors.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";

describe("browser terminal SSH session (real sshd)", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let hostKeyLine: string;
  let n = 0;
  const shells: Shell[] = [];

  before(async () => {
    sshd = await startSshd();
    hostKeyLine = readFileSync(join(sshd.dir, "ssh_host_ed25519_key.pub"), "utf8").split(" ").slice(0, 2).join(" ");
  });
  after(async () => {
    for (const s of shells) s.client.end();
    await sshd?.stop();
  });

  const knownHosts = (text: string) => {
    const file = join(sshd.dir, `known_hosts_${++n}`);
    writeFileSync(file, text);
    return file;
  };
  const hostBlob = () => Buffer.from(hostKeyLine.split(" ")[1]!, "base64");

  const open = async (o: { file: string; answer?: boolean; identity?: string; asked?: UnknownHostKey[] }) => {
    const shell = await openShell({
      sock: connect(sshd.port, "127.0.0.1"),
      auth: sshAuth({ user: sshd.user, identity: o.identity ?? sshd.userKeyPath, sshDir: "/nonexistent" }),
      hostKeyName: "edge-1",
      knownHostsFile: o.file,
      size: { cols: 100, rows: 30 },
      confirmUnknownKey: async (key) => {
        o.asked?.push(key);
        if (o.answer === undefined) throw new Error("asked about a host key it should know");
        return o.answer;
      },
      handshakeTimeoutMs: 20_000,
    });
    shells.push(shell);
    return shell;
  };

  /** Types a command line and returns the output up to `marker`. */
  const run = (shell: Shell, line: string, marker: RegExp) =>
    new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`no ${marker} in: ${JSON.stringify(out)}`)), 15_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = marker.exec(out);
        if (m) {
          clearTimeout(timer);
          shell.channel.off("data", onData);
          resolve(m[0]);
        }
      };
      shell.channel.on("data", onData);
      shell.channel.write(`${line}\n`);
    });

  it("a known host key opens a shell on a PTY of the page's size, which follows a resize", async () => {
    const shell = await open({ file: knownHosts(`edge-1 ${hostKeyLine}\n`) });
    assert.equal(shell.hostKeyAdded, false);
    assert.equal(await run(shell, "echo size-$((6*7)) $(stty size)", /size-42 \d+ \d+/), "size-42 30 100");
    shell.resize({ cols: 132, rows: 43 });
    assert.equal(await run(shell, "echo size-$((6*7)) $(stty size)", /size-42 \d+ \d+/), "size-42 43 132");
    const exited = new Promise((resolve) => shell.channel.once("exit", resolve));
    shell.channel.write("exit 7\n");
    assert.equal(await exited, 7);
  });

  it("a hashed known_hosts entry (ssh-keygen -H) is known", async () => {
    const file = knownHosts(`other ${hostKeyLine}\nedge-1 ${hostKeyLine}\n`);
    execFileSync("ssh-keygen", ["-q", "-H", "-f", file], { stdio: "ignore" });
    assert.doesNotMatch(readFileSync(file, "utf8"), /edge-1/);
    const shell = await open({ file });
    assert.equal(await run(shell, "echo hashed-$((1+1))", /hashed-2/), "hashed-2");
  });

  it("an unknown host key is shown with its fingerprint and added only when accepted", async () => {
    const file = knownHosts("");
    const asked: UnknownHostKey[] = [];
    const shell = await open({ file, answer: true, asked });
    assert.equal(asked.length, 1);
    assert.deepEqual(asked[0], {
      host: "edge-1",
      keyType: "ssh-ed25519",
      fingerprint: fingerprint(hostBlob()),
      knownHosts: file,
    });
    const fromSsh = execFileSync("ssh-keygen", ["-lf", join(sshd.dir, "ssh_host_ed25519_key.pub")], {
      encoding: "utf8",
    });
    assert.equal(fromSsh.split(" ")[1], asked[0]!.fingerprint, "the fingerprint ssh-keygen shows on the device");
    assert.equal(shell.hostKeyAdded, true);
    assert.equal(readFileSync(file, "utf8"), `edge-1 ${hostKeyLine}\n`);
    assert.match(execFileSync("ssh-keygen", ["-F", "edge-1", "-f", file], { encoding: "utf8" }), /found: line 1/);
    // The next session knows it and asks nothing.
    await open({ file });
  });

  it("a declined host key ends the session and adds nothing", async () => {
    const file = knownHosts("");
    await assert.rejects(open({ file, answer: false }), (err: DeviceStreamsError) => {
      assert.equal(err.code, "DS_SSH_HOST_KEY_DECLINED");
      assert.match(err.message, /you declined the host key ssh-ed25519 SHA256:/);
      return true;
    });
    assert.equal(readFileSync(file, "utf8"), "");
  });

  it("a changed host key is refused, never asked about, and known_hosts is left alone", async () => {
    const other = join(sshd.dir, "other_host_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
    const otherLine = readFileSync(`${other}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
    const text = `edge-1 ${otherLine}\n`;
    const file = knownHosts(text);
    const asked: UnknownHostKey[] = [];
    await assert.rejects(open({ file, answer: true, asked }), (err: DeviceStreamsError) => {
      assert.equal(err.code, "DS_SSH_HOST_KEY_CHANGED");
      assert.match(err.message, /the host key of "edge-1" has changed: the device presented ssh-ed25519 SHA256:/);
      assert.match(err.message, /line 1/);
      assert.match(err.message, /ssh-keygen -R edge-1 -f /);
      return true;
    });
    assert.equal(asked.length, 0);
    assert.equal(readFileSync(file, "utf8"), text);
  });

  it("a revoked host key is refused", async () => {
    const file = knownHosts(`edge-1 ${hostKeyLine}\n@revoked * ${hostKeyLine}\n`);
    await assert.rejects(open({ file }), (err: DeviceStreamsError) => {
      assert.equal(err.code, "DS_SSH_HOST_KEY_REVOKED");
      assert.match(err.message, /:2 marks @revoked/);
      return true;
    });
  });

  it("a key sshd does not accept fails naming the user and the keys offered", async () => {
    const stranger = join(sshd.dir, "stranger");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger]);
    await assert.rejects(
      open({ file: knownHosts(`edge-1 ${hostKeyLine}\n`), identity: stranger }),
      (err: DeviceStreamsError) => {
        assert.equal(err.code, "DS_SSH_AUTH_FAILED");
        assert.match(
          err.message,
          new RegExp(`no key for user "${sshd.user}" \\(offered: ${stranger} \\(ssh-ed25519\\)\\)`),
        );
        return true;
      },
    );
  });

  it("asks for the key types known_hosts holds first", () => {
    assert.deepEqual(hostKeyPreference([]).slice(0, 2), ["ssh-ed25519", "ecdsa-sha2-nistp256"]);
    assert.deepEqual(hostKeyPreference(["ssh-rsa"]).slice(0, 4), [
      "rsa-sha2-512",
      "rsa-sha2-256",
      "ssh-rsa",
      "ssh-ed25519",
    ]);
    assert.deepEqual(hostKeyPreference(["ecdsa-sha2-nistp384", "unknown-type"])[0], "ecdsa-sha2-nistp384");
    assert.equal(new Set(hostKeyPreference(["ssh-ed25519"])).size, hostKeyPreference(["ssh-ed25519"]).length);
  });
});
