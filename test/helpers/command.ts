// Runs an external program (ssh, scp, curl, ...) to completion with a hard deadline. Its stdout is
// hashed as it streams, so hundreds of MiB can be checked without holding them; its process group
// is killed on timeout and when the test process exits, so a child (ssh's ProxyCommand) never
// outlives the test.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync } from "node:fs";

export interface CommandResult {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The first 1 MiB of stdout as text; use stdoutSha256 and stdoutBytes for bulk output. */
  stdout: string;
  stdoutBytes: number;
  stdoutSha256: string;
  stderr: string;
}

export interface CommandOptions {
  /** Bytes to write to stdin, or `{ file }` to connect stdin to a file; stdin is empty otherwise. */
  input?: Buffer | string | { file: string };
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

const keptStdoutBytes = 1024 * 1024;
const groups = new Set<number>();
process.on("exit", () => {
  for (const pgid of groups) killGroup(pgid);
});

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // already gone
  }
}

export function commandLine(cmd: string, args: string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

/** Resolves when the program exits, whatever its exit code; rejects only on timeout or spawn failure. */
export function runCommand(cmd: string, args: string[], o: CommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const input = o.input;
  const stdinFd = input && typeof input === "object" && "file" in input ? openSync(input.file, "r") : undefined;
  // Its own process group (detached), so a timeout kills ssh and its ProxyCommand together.
  const child = spawn(cmd, args, {
    stdio: [stdinFd ?? "pipe", "pipe", "pipe"],
    detached: true,
    env: o.env ?? process.env,
  });
  if (stdinFd !== undefined) closeSync(stdinFd);
  const pgid = child.pid;
  if (pgid) groups.add(pgid);
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let stdoutBytes = 0;
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => {
      hash.update(c);
      stdoutBytes += c.length;
      if (keptBytes < keptStdoutBytes) {
        kept.push(c);
        keptBytes += c.length;
      }
    });
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    if (child.stdin) {
      // The program may exit without reading all of its input (an error): that is its result.
      child.stdin.on("error", () => {});
      child.stdin.end(input !== undefined && stdinFd === undefined ? (input as Buffer | string) : undefined);
    }
    const timer = setTimeout(() => {
      if (pgid) killGroup(pgid);
      reject(
        new Error(
          `${commandLine(cmd, args)} did not finish within ${timeoutMs} ms (${stdoutBytes} bytes of stdout); stderr:\n${stderr}`,
        ),
      );
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      if (pgid) groups.delete(pgid);
      reject(err);
    });
    // 'close' waits for stdout and stderr to end too, so nothing the program wrote is lost.
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (pgid) {
        // Whatever the program left behind in its group (a ProxyCommand) goes with it.
        killGroup(pgid);
        groups.delete(pgid);
      }
      resolve({
        code,
        signal,
        stdout: Buffer.concat(kept).subarray(0, keptStdoutBytes).toString(),
        stdoutBytes,
        stdoutSha256: hash.digest("hex"),
        stderr,
      });
    });
  });
}

/** Like runCommand, but a non-zero exit is an error that shows the command and its stderr. */
export async function runChecked(cmd: string, args: string[], o: CommandOptions = {}): Promise<CommandResult> {
  const r = await runCommand(cmd, args, o);
  if (r.code !== 0) {
    throw new Error(
      `${commandLine(cmd, args)} exited with ${r.code ?? r.signal}; stderr:\n${r.stderr}\nstdout:\n${r.stdout.slice(0, 4000)}`,
    );
  }
  return r;
}
