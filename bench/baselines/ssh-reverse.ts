// OpenSSH reverse forwarding, the tool people use today to reach a device that only dials out:
// `ssh -N -R` from the "device" side to a private loopback sshd (test/helpers/sshd.ts); the
// driver connects to the port sshd listens on, and ssh delivers to the target. One sshd per
// variant, so the CPU read of its process tree is that variant's alone.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../../test/helpers/free-port.ts";
import { startSshd } from "../../test/helpers/sshd.ts";
import { accepts } from "../net.ts";
import { killOnExit, rssKiB, tree } from "../procs.ts";
import type { BenchPath } from "./path.ts";

/** `cipher` undefined: OpenSSH's default choice (chacha20-poly1305 on OpenSSH 9). */
export async function sshReverse(targetPort: number, cipher?: string, timeoutMs = 20_000): Promise<BenchPath> {
  const sshd = await startSshd();
  const remotePort = await freePort();
  const args = [
    ...sshd.sshArgs(),
    "-v",
    "-N",
    "-o",
    "ExitOnForwardFailure=yes",
    "-p",
    String(sshd.port),
    ...(cipher ? ["-c", cipher] : []),
    "-R",
    `127.0.0.1:${remotePort}:127.0.0.1:${targetPort}`,
    `${sshd.user}@127.0.0.1`,
  ];
  const ssh = killOnExit(spawn("ssh", args, { stdio: ["ignore", "ignore", "pipe"] }));
  let log = "";
  ssh.stderr!.on("data", (c: Buffer) => {
    log += c.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  });
  const deadline = Date.now() + timeoutMs;
  // Bounded poll: the forward is up once sshd accepts on the remote port.
  while (!(await accepts(remotePort))) {
    if (Date.now() > deadline || ssh.exitCode !== null) {
      ssh.kill("SIGKILL");
      await sshd.stop();
      throw new Error(`ssh -R never came up; ssh said:\n${log.slice(-4000)}\nsshd said:\n${sshd.logs()}`);
    }
    await sleep(50);
  }
  const negotiated = /kex: server->client cipher: (\S+)/.exec(log)?.[1] ?? "unknown";
  // sshd's listener writes its pid file; its per-connection children are found through /proc.
  const sshdPid = Number(readFileSync(join(sshd.dir, "sshd.pid"), "utf8").trim());
  return {
    name: cipher ? `ssh-${cipher.split("@")[0]}` : "ssh-default",
    port: remotePort,
    pids: () => [ssh.pid!, sshdPid],
    rss: () => ({ ssh: rssKiB(ssh.pid!), sshd: tree([sshdPid]).reduce((a, p) => a + rssKiB(p), 0) }),
    detail: `ssh -R, cipher ${negotiated}`,
    stop: async () => {
      ssh.kill("SIGKILL");
      await sshd.stop();
    },
  };
}
