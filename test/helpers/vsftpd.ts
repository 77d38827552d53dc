// A real vsftpd (Debian's) for tests: in the foreground on a loopback port, with its own config in
// a temp folder, anonymous login into that folder and uploads into its `up/`, passive mode on a
// port range of our choosing (the range a device's allow-list names as one service).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forgetOnExit, removeOnExit, startProcess, tailFile } from "./child-process.ts";
import { freePort } from "./free-port.ts";
import { StopWaiting, waitFor } from "./wait.ts";

export const vsftpdPath = "/usr/sbin/vsftpd";

export interface Vsftpd {
  /** The control port, on 127.0.0.1. */
  port: number;
  /** Passive data ports, inclusive. */
  passive: { first: number; last: number };
  /** Where uploads land (the FTP path `/up`). */
  uploadDir: string;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * A free block of `count` ports: a random base checked port by port (vsftpd binds its passive
 * ports only when a transfer starts, so this is a best effort against other processes).
 */
async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = await Promise.all(Array.from({ length: count }, (_, i) => freeCheck(base + i)));
    if (ports.every(Boolean)) return base;
  }
  throw new Error(`no ${count} free ports in a row`);
}

function freeCheck(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

export async function startVsftpd(o: { passivePorts?: number } = {}): Promise<Vsftpd> {
  const dir = mkdtempSync(join(tmpdir(), "ds-vsftpd-"));
  removeOnExit(dir);
  // Anonymous FTP chroots into its root, which must not be writable by the ftp user; `up/` is.
  const root = join(dir, "root");
  const uploadDir = join(root, "up");
  mkdirSync(uploadDir, { recursive: true });
  chmodSync(root, 0o555);
  chmodSync(uploadDir, 0o777);
  mkdirSync(join(dir, "empty"));
  const count = o.passivePorts ?? 16;
  const first = await freeRange(count);
  const passive = { first, last: first + count - 1 };
  const logPath = join(dir, "vsftpd.log");
  const configPath = join(dir, "vsftpd.conf");
  const root_ = process.getuid?.() === 0;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(
      configPath,
      [
        "listen=YES",
        "listen_ipv6=NO",
        "listen_address=127.0.0.1",
        `listen_port=${port}`,
        "background=NO",
        "anonymous_enable=YES",
        "no_anon_password=YES",
        "local_enable=NO",
        "write_enable=YES",
        "anon_upload_enable=YES",
        "anon_mkdir_write_enable=YES",
        "anon_umask=022",
        `anon_root=${root}`,
        "pasv_enable=YES",
        `pasv_min_port=${passive.first}`,
        `pasv_max_port=${passive.last}`,
        // What its PASV replies say; a client through the tunnel reaches the control connection's host instead.
        "pasv_address=127.0.0.1",
        "seccomp_sandbox=NO",
        `secure_chroot_dir=${join(dir, "empty")}`,
        "xferlog_enable=YES",
        `vsftpd_log_file=${logPath}`,
        "log_ftp_protocol=YES",
        // Not root (a developer's machine): vsftpd then runs every session as the launching user.
        ...(root_ ? [] : ["run_as_launching_user=YES"]),
        "",
      ].join("\n"),
    );
    const proc = startProcess("vsftpd", vsftpdPath, [configPath], join(dir, "stderr.log"));
    const listening = await waitFor(
      `vsftpd to listen on port ${port}`,
      async () => {
        if (!proc.running()) throw new StopWaiting("vsftpd exited");
        return !(await freeCheck(port));
      },
      10_000,
      20,
    ).catch(() => false);
    if (!listening) {
      await proc.stop(1_000);
      const why = tailFile(join(dir, "stderr.log"), 20);
      if (attempt < 3 && /Address already in use|could not bind/i.test(why)) continue;
      rmSync(dir, { recursive: true, force: true });
      forgetOnExit(dir);
      throw new Error(`vsftpd did not listen on 127.0.0.1:${port} (is it installed? .ci/run installs it):\n${why}`);
    }
    return {
      port,
      passive,
      uploadDir,
      logs: () => {
        let log = "";
        try {
          log = readFileSync(logPath, "utf8").slice(-10_000);
        } catch {
          // nothing logged yet
        }
        return `${tailFile(join(dir, "stderr.log"), 20)}\n${log}`;
      },
      stop: async () => {
        await proc.stop(2_000);
        chmodSync(root, 0o755);
        rmSync(dir, { recursive: true, force: true });
        forgetOnExit(dir);
      },
    };
  }
}
