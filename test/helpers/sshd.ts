// A real OpenSSH server for tests: /usr/sbin/sshd in the foreground on a loopback port, with its
// own config, host key, user key and authorized_keys in a temp folder, as the current user. Not
// root needs nothing else (sshd then serves only that user); as root sshd also needs its
// privilege-separation folder and the key-only root login set here.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { forgetOnExit, removeOnExit, startProcess, tailFile } from "./child-process.ts";
import { runChecked } from "./command.ts";
import { freePort } from "./free-port.ts";
import { StopWaiting, waitFor } from "./wait.ts";

export const sshdPath = "/usr/sbin/sshd";
/** The name the host key is pinned under, whatever address or port ssh dials (a tunnel's port, a ProxyCommand). */
const hostKeyAlias = "devicestreams-test-sshd";

export interface Sshd {
  port: number;
  /** 127.0.0.1:PORT, for an agent's allow-list. */
  address: string;
  user: string;
  userKeyPath: string;
  knownHostsPath: string;
  /** A folder of the test's own that remote commands may write to (same machine). */
  dir: string;
  /** Options every ssh/scp call needs: this key only, this host key only, no prompts, no user config. */
  sshArgs(): string[];
  /** sshd's log so far. */
  logs(): string;
  stop(): Promise<void>;
}

function sshdConfig(o: { port: number; dir: string; user: string; root: boolean }): string {
  return [
    `Port ${o.port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${join(o.dir, "ssh_host_ed25519_key")}`,
    `PidFile ${join(o.dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(o.dir, "authorized_keys")}`,
    // No PAM (it needs root and system config) and no ownership checks on the temp folder.
    "UsePAM no",
    "StrictModes no",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    `PermitRootLogin ${o.root ? "prohibit-password" : "no"}`,
    `AllowUsers ${o.user}`,
    // scp speaks SFTP since OpenSSH 9.0.
    "Subsystem sftp internal-sftp",
    "PrintMotd no",
    "PrintLastLog no",
    "X11Forwarding no",
    "LogLevel VERBOSE",
    "",
  ].join("\n");
}

/** `netns`: run sshd inside that network namespace (its own 127.0.0.1), e.g. a test node's. */
export async function startSshd(o: { netns?: string } = {}): Promise<Sshd> {
  const user = userInfo().username;
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), "ds-sshd-"));
  removeOnExit(dir);
  if (root) {
    // sshd running as root chroots its pre-auth child into this compiled-in path; Debian's
    // service unit creates it at boot, a container or CI machine may not have it.
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  }
  const hostKey = join(dir, "ssh_host_ed25519_key");
  const userKeyPath = join(dir, "id_ed25519");
  const keygen = (file: string, comment: string) =>
    runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], { timeoutMs: 15_000 });
  await Promise.all([keygen(hostKey, "devicestreams test host"), keygen(userKeyPath, "devicestreams test user")]);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(`${userKeyPath}.pub`), { mode: 0o600 });
  const knownHostsPath = join(dir, "known_hosts");
  writeFileSync(knownHostsPath, `${hostKeyAlias} ${readFileSync(`${hostKey}.pub`, "utf8").trim()}\n`);

  const logPath = join(dir, "sshd.log");
  const configPath = join(dir, "sshd_config");
  // freePort() may race another process for the port: try again with a new one.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(configPath, sshdConfig({ port, dir, user, root }));
    // -D: foreground, -e: log to stderr (the log file); the absolute path lets sshd re-exec itself.
    const args = ["-D", "-e", "-f", configPath];
    const proc = o.netns
      ? startProcess("sshd", "ip", ["netns", "exec", o.netns, sshdPath, ...args], logPath)
      : startProcess("sshd", sshdPath, args, logPath);
    const listening = await waitFor(
      `sshd to listen on port ${port}`,
      () => {
        if (!proc.running()) throw new StopWaiting("sshd exited");
        return readFileSync(logPath, "utf8").includes(`Server listening on 127.0.0.1 port ${port}.`);
      },
      15_000,
      20,
    ).catch(() => false);
    if (!listening) {
      await proc.stop(2_000);
      const log = proc.tail(40);
      if (attempt < 3 && /Address already in use/.test(log)) continue;
      rmSync(dir, { recursive: true, force: true });
      forgetOnExit(dir);
      throw new Error(`sshd did not start listening on 127.0.0.1:${port}; its log:\n${log}`);
    }
    return {
      port,
      address: `127.0.0.1:${port}`,
      user,
      userKeyPath,
      knownHostsPath,
      dir,
      sshArgs: () => [
        "-F",
        "/dev/null",
        "-i",
        userKeyPath,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "BatchMode=yes",
        "-o",
        `UserKnownHostsFile=${knownHostsPath}`,
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        `HostKeyAlias=${hostKeyAlias}`,
        "-o",
        "CheckHostIP=no",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "ConnectTimeout=20",
        // A stalled tunnel must fail the command rather than hang it (the test's deadline is the backstop).
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=4",
      ],
      logs: () => tailFile(logPath, 400),
      stop: async () => {
        await proc.stop(5_000);
        rmSync(dir, { recursive: true, force: true });
        forgetOnExit(dir);
      },
    };
  }
}
