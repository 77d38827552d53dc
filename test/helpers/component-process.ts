// Runs one devicestreams command as a real child process on the project's Node.js, keeps its
// output for failure reports, and reads what it announces (ports) from its log.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { nodeFlags } from "../../cli/node-flags.ts";
import { StopWaiting, waitFor } from "./wait.ts";

const cli = fileURLToPath(new URL("../../cli/devicestreams.ts", import.meta.url));
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

export class ComponentProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  private output = "";
  private readonly exited: Promise<number | null>;

  /** `wrap` runs it through a command prefix, such as `ip netns exec NAME` (which execs in place). */
  constructor(name: string, args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []) {
    this.name = name;
    const argv = [process.execPath, ...nodeFlags, cli, ...args];
    const [command, ...rest] = [...wrap, ...argv];
    this.proc = spawn(command!, rest, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DEVICESTREAMS_LOG_LEVEL: "debug", ...env },
    });
    running.add(this.proc);
    const keep = (c: Buffer) => {
      this.output += c.toString();
      if (this.output.length > 1_000_000) this.output = this.output.slice(-500_000);
    };
    this.proc.stdout!.on("data", keep);
    this.proc.stderr!.on("data", keep);
    this.exited = new Promise((resolve) =>
      this.proc.once("exit", (code) => {
        running.delete(this.proc);
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get logs(): string {
    return this.output;
  }

  /** Waits until the output matches, returning the match; fails with the logs if the process dies first. */
  async waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    try {
      return await waitFor(
        `${this.name} to print ${pattern}`,
        () => {
          const m = pattern.exec(this.output);
          if (!m && this.proc.exitCode !== null) throw new StopWaiting("exited");
          return m;
        },
        timeoutMs,
        20,
      );
    } catch {
      throw new Error(
        `${this.name} never printed ${pattern} (exit ${this.proc.exitCode}); its output:\n${this.output}`,
      );
    }
  }

  /** Resident set size in KiB, from /proc. */
  rssKiB(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.proc.exitCode === null) this.proc.kill(sig);
  }

  async stop(sig: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
    this.signal(sig);
    return this.exited;
  }

  wait(): Promise<number | null> {
    return this.exited;
  }
}
