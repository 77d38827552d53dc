// A real OpenSSH server on the device side and the real ssh/scp clients on the operator side,
// through relay and agent: remote commands, a 64 MiB file up and back with matching SHA-256
// (hashed by sha256sum on the far side too), and ssh's ProxyCommand on `connect --stdio`.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { type as osType } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { newToken } from "../../transport/credentials.ts";
import { commandLine, runChecked, runCommand } from "../helpers/command.ts";
import { type DataPlane, startDataPlane, stdioClientArgs } from "../helpers/dataplane.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { sha256 } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const cli = fileURLToPath(new URL("../../cli/devicestreams.ts", import.meta.url));

/** How many sockets a process holds open, from /proc: a leaked connection shows up here. */
function openSockets(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

describe("data plane: OpenSSH through relay and agent", function () {
  this.timeout(90_000);
  let sshd: Sshd;
  let plane: DataPlane;
  let remoteDir: string;
  let extraLogs = "";

  before(async () => {
    sshd = await startSshd();
    plane = await startDataPlane({ service: "ssh", allow: [`ssh=${sshd.address}`] });
    // The "device" is this machine: remote commands write here.
    remoteDir = join(sshd.dir, "remote");
    mkdirSync(remoteDir);
  });
  after(async () => {
    await plane?.stop();
    await sshd?.stop();
  });
  beforeEach(() => {
    extraLogs = "";
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") {
      console.error(plane.logs().slice(-20_000));
      console.error(`----- sshd -----\n${sshd.logs().slice(-10_000)}`);
      if (extraLogs) console.error(`----- ssh -----\n${extraLogs.slice(-10_000)}`);
    }
  });

  /** ssh to the device through the client's local port. */
  const ssh = (command: string, o: Parameters<typeof runCommand>[2] = {}) => {
    const args = [...sshd.sshArgs(), "-p", String(plane.client.port), `${sshd.user}@127.0.0.1`, command];
    extraLogs += `$ ${commandLine("ssh", args)}\n`;
    return runCommand("ssh", args, { timeoutMs: 60_000, ...o }).then((r) => {
      extraLogs += r.stderr;
      return r;
    });
  };

  /** ssh with `devicestreams connect --stdio` as its ProxyCommand; "device" is only a name here. */
  const sshViaProxy = (proxyArgs: string[], command: string, o: Parameters<typeof runCommand>[2] = {}) => {
    // ssh runs ProxyCommand with the shell and expands %-tokens in it: quote and escape both.
    const proxy = commandLine(process.execPath, [cli, ...proxyArgs]).replaceAll("%", "%%");
    const args = [...sshd.sshArgs(), "-o", `ProxyCommand=${proxy}`, `${sshd.user}@device`, command];
    extraLogs += `$ ${commandLine("ssh", args)}\n`;
    return runCommand("ssh", args, { timeoutMs: 60_000, ...o }).then((r) => {
      extraLogs += r.stderr;
      return r;
    });
  };

  it("runs remote commands and returns their output and exit status", async () => {
    const nonce = randomBytes(16).toString("hex");
    const r = await ssh(`echo ${nonce}; uname -s`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${nonce}\n${osType()}\n`);
    // The remote side really ran it: its exit status comes back through the tunnel too.
    const failed = await ssh("exit 7");
    assert.equal(failed.code, 7, failed.stderr);
    assert.match(sshd.logs(), /Accepted publickey for /);
  });

  it("sends a 64 MiB random file up and brings it back with the same SHA-256", async () => {
    const local = join(sshd.dir, "upload.bin");
    const payload = randomBytes(64 * 1024 * 1024);
    writeFileSync(local, payload);
    const want = sha256(payload);
    const remote = join(remoteDir, `copy-${randomBytes(4).toString("hex")}.bin`);

    const up = await ssh(`cat > ${remote} && sha256sum ${remote}`, { input: { file: local } });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout.split(/\s+/)[0], want, "sha256sum on the device disagrees with what was sent");

    const down = await ssh(`cat ${remote}`);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(down.stdoutBytes, payload.length);
    assert.equal(down.stdoutSha256, want);
  });

  it("copies a file both ways with scp (SFTP)", async () => {
    const local = join(sshd.dir, "scp-up.bin");
    const back = join(sshd.dir, "scp-back.bin");
    const payload = randomBytes(8 * 1024 * 1024 + 12_345);
    writeFileSync(local, payload);
    const remote = join(remoteDir, "scp.bin");
    const target = (path: string) => `${sshd.user}@127.0.0.1:${path}`;
    const scp = (from: string, to: string) =>
      runChecked("scp", [...sshd.sshArgs(), "-q", "-P", String(plane.client.port), from, to], { timeoutMs: 60_000 });
    await scp(local, target(remote));
    const check = await ssh(`sha256sum ${remote}`);
    assert.equal(check.stdout.split(/\s+/)[0], sha256(payload));
    await scp(target(remote), back);
    const r = await runChecked("sha256sum", [back], { timeoutMs: 15_000 });
    assert.equal(r.stdout.split(/\s+/)[0], sha256(payload));
  });

  it("works as ssh's ProxyCommand in stdio mode and exits cleanly", async () => {
    const nonce = randomBytes(16).toString("hex");
    const proxyArgs = stdioClientArgs(plane.stream, plane.relay.address);
    const r = await sshViaProxy(proxyArgs, `echo ${nonce}; uname -s`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${nonce}\n${osType()}\n`);
    assert.doesNotMatch(r.stderr, /DS_[A-Z_]+/, "a clean session reports no error");
    // A few MiB through stdio as well, hashed by the device.
    const payload = randomBytes(4 * 1024 * 1024);
    const hashed = await sshViaProxy(proxyArgs, "sha256sum", { input: payload });
    assert.equal(hashed.code, 0, hashed.stderr);
    assert.equal(hashed.stdout.split(/\s+/)[0], sha256(payload));
  });

  it("leaves no socket open on the agent after ProxyCommand sessions end", async () => {
    // ssh kills its ProxyCommand (SIGHUP) as it exits, so the relay sees the client's FIN and
    // then loses the client: the agent gets Fin, then Reset, for a socket it is still shutting down.
    const before = openSockets(plane.agent.process.pid);
    const proxyArgs = stdioClientArgs(plane.stream, plane.relay.address);
    const runs = await Promise.all(Array.from({ length: 8 }, () => sshViaProxy(proxyArgs, "echo done")));
    for (const r of runs) assert.equal(`${r.code} ${r.stdout}`, "0 done\n", r.stderr);
    let now = openSockets(plane.agent.process.pid);
    await waitFor(
      "the agent to close the sessions' sockets",
      () => {
        now = openSockets(plane.agent.process.pid);
        return now <= before;
      },
      5_000,
      100,
    ).catch(() => {}); // the assertion below says what the agent still held
    assert.ok(now <= before, `the agent held ${before} sockets before 8 ssh sessions and ${now} after they ended`);
  });

  it("shows ssh's user why the ProxyCommand failed when its token is wrong", async () => {
    const wrong = join(sshd.dir, "wrong.token");
    writeFileSync(wrong, newToken("source"), { mode: 0o600 });
    const proxyArgs = [
      "connect",
      "--stdio",
      "--relay",
      plane.relay.address,
      "--ca",
      plane.stream.caCert,
      "--token-file",
      wrong,
    ];
    const started = Date.now();
    const r = await sshViaProxy(proxyArgs, "echo should-not-run");
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /devicestreams connect: DS_AUTH_INVALID: /);
    assert.ok(Date.now() - started < 30_000, "the failure must come quickly, not after ssh's own timeouts");
    // The tunnel refused it, not sshd: no connection reached the device.
    await plane.relay.process.waitFor(/call refused.*DS_AUTH_INVALID/, 5_000);
  });
});
