// Long-running helper processes for tests (etcd, kube-apiserver, ...): output goes to a log file,
// and every process still running when the test process exits is killed, also after a crash or a
// signal, so a failed run leaves no servers holding ports.
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";

export interface ManagedProcess {
  readonly name: string;
  readonly logPath: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal) once the process has ended. */
  readonly exited: Promise<number | null>;
  running(): boolean;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of the log file, for error messages. */
  tail(lines?: number): string;
}

const live = new Set<ChildProcess>();
const leftovers = new Set<string>();

function killAll(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      killAll();
      // Alone, our listener would swallow the signal's default action: die the usual way.
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

/** Removes dir when the test process exits, unless removed earlier with forgetOnExit(). */
export function removeOnExit(dir: string): void {
  hookExit();
  leftovers.add(dir);
}

export function forgetOnExit(dir: string): void {
  leftovers.delete(dir);
}

export function tailFile(path: string, lines = 40): string {
  if (!existsSync(path)) return "";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

export function startProcess(name: string, command: string, args: string[], logPath: string): ManagedProcess {
  hookExit();
  // Appending keeps the history of a restarted process in one file.
  const log = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ["ignore", log, log] });
  } finally {
    closeSync(log);
  }
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      live.delete(child);
      resolve(code);
    });
    child.once("error", (err) => {
      // Spawning failed (missing binary, ...): no "exit" follows, so record why and end here.
      appendFileSync(logPath, `${name}: ${err.message}\n`);
      live.delete(child);
      resolve(null);
    });
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  return {
    name,
    logPath,
    child,
    exited,
    running: () => !ended,
    async stop(graceMs = 10_000) {
      if (ended) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    tail: (lines?: number) => tailFile(logPath, lines),
  };
}
