// What both flood drivers (bench/flood.ts, bench/flood-hub.ts) share: starting an attack in its
// own process and sampling each process's peak RSS while it runs.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { rssKiB } from "../procs.ts";
import type { AttackOptions, AttackReport } from "./attack.ts";

export interface Attack {
  child: ChildProcess;
  /** The attacker's report once its duration is over (undefined if it died first). */
  report: Promise<AttackReport | undefined>;
}

export function startAttack(o: AttackOptions): Attack {
  const child = fork(fileURLToPath(new URL("./attack.ts", import.meta.url)), [JSON.stringify(o)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const report = new Promise<AttackReport | undefined>((resolve) => {
    child.once("message", (m) => resolve(m as AttackReport));
    child.once("exit", () => resolve(undefined));
  });
  return { child, report };
}

/** Samples the RSS of named processes every 250 ms; stop() returns each one's peak in KiB. */
export function samplePeaks(pids: () => Record<string, number | undefined>): { stop(): Record<string, number> } {
  const peak: Record<string, number> = {};
  const sample = () => {
    for (const [name, pid] of Object.entries(pids())) {
      if (pid) peak[name] = Math.max(peak[name] ?? 0, rssKiB(pid));
    }
  };
  sample();
  const timer = setInterval(sample, 250);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** Markdown for a peak in MiB against a limit in MiB. */
export const versus = (kib: number | undefined, limitMiB?: number) =>
  `${((kib ?? 0) / 1024).toFixed(0)} MiB${limitMiB ? ` of ${limitMiB}` : ""}`;
