// OpenSSH reverse forwarding, the tool people use today to reach a device that only dials out:
// `ssh -N -R` from the "device" side to a private loopback sshd (test/helpers/sshd.ts); the
// driver connects to the port sshd listens on, and ssh delivers to the target. One sshd per
// variant, so the CPU read of its process tree is that variant's alone.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../../test/helpers/free-port.ts";
import { type Sshd, startSshd } from "../../test/helpers/sshd.ts";
import { accepts } from "../net.ts";
import { killOnExit, rssKiB, tree } from "../procs.ts";
import type { BenchPath } from "./path.ts";

/** A running `ssh -N` and what it said so far (`-v`, for errors and the negotiated cipher). */
export interface ReverseSsh {
  ssh: ChildProcess;
  log(): string;
}

/**
 * Starts `ssh -N -R 127.0.0.1:remotePort:127.0.0.1:targetPort` into `sshd`, a fresh process.
 * `cipher` undefined: OpenSSH's default choice (chacha20-poly1305 on OpenSSH 9).
 */
export function startReverseSsh(sshd: Sshd, remotePort: number, targetPort: number, cipher?: string): ReverseSsh {
  return startSsh(sshd, [...(cipher ? ["-c", cipher] : []), "-R", `127.0.0.1:${remotePort}:127.0.0.1:${targetPort}`]);
}

/** `ssh -N` into `sshd` with these forwarding flags (`-R`, `-L`), a fresh process. */
export function startSsh(sshd: Sshd, forward: string[]): ReverseSsh {
  const args = [
    ...sshd.sshArgs(),
    "-v",
    "-N",
    "-o",
    "ExitOnForwardFailure=yes",
    "-p",
    String(sshd.port),
    ...forward,
    `${sshd.user}@127.0.0.1`,
  ];
  const ssh = killOnExit(spawn("ssh", args, { stdio: ["ignore", "ignore", "pipe"] }));
  let log = "";
  ssh.stderr!.on("data", (c: Buffer) => {
    log += c.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  });
  return { ssh, log: () => log };
}

/**
 * Polls `up` every `everyMs` until it is true (the forward works); bounded: kills ssh and fails
 * with ssh's and sshd's logs if ssh exits or `timeoutMs` passes first.
 */
export async function waitForward(
  r: ReverseSsh,
  sshd: Sshd,
  up: () => Promise<boolean>,
  timeoutMs: number,
  everyMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await up())) {
    if (Date.now() > deadline || r.ssh.exitCode !== null) {
      r.ssh.kill("SIGKILL");
      throw new Error(`ssh -R never came up; ssh said:\n${r.log().slice(-4000)}\nsshd said:\n${sshd.logs()}`);
    }
    await sleep(everyMs);
  }
}

/** `cipher` undefined: OpenSSH's default choice (chacha20-poly1305 on OpenSSH 9). */
export async function sshReverse(targetPort: number, cipher?: string, timeoutMs = 20_000): Promise<BenchPath> {
  const sshd = await startSshd();
  const remotePort = await freePort();
  const r = startReverseSsh(sshd, remotePort, targetPort, cipher);
  const { ssh } = r;
  try {
    // The forward is up once sshd accepts on the remote port.
    await waitForward(r, sshd, () => accepts(remotePort), timeoutMs, 50);
  } catch (e) {
    await sshd.stop();
    throw e;
  }
  const negotiated = /kex: server->client cipher: (\S+)/.exec(r.log())?.[1] ?? "unknown";
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
