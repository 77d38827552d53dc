// What the benchmark reads about processes: CPU time and RSS from /proc (a whole process tree, as
// sshd and socat fork per connection), the fd limit, tool versions, and the load on the machine.
import { type ChildProcess, execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";

const spawned = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of spawned) c.kill("SIGKILL");
});
/** Kills `child` when the benchmark exits, however it exits. */
export function killOnExit(child: ChildProcess): ChildProcess {
  spawned.add(child);
  child.once("exit", () => spawned.delete(child));
  return child;
}

const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** `pids` and all their descendants (depth-bounded: process trees here are 3 deep at most). */
export function tree(pids: number[]): number[] {
  const all = new Set<number>();
  let level = pids;
  for (let depth = 0; depth < 6 && level.length; depth++) {
    for (const p of level) all.add(p);
    level = level.flatMap(children).filter((p) => !all.has(p));
  }
  return [...all];
}

/** CPU seconds (user + system, including reaped children) of the processes and their descendants. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of tree(pids)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name, which may contain spaces: ")" ends it.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 after the name.
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // exited between listing and reading
    }
  }
  return ticks / clockTicks;
}

export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Raises this process's soft fd limit to its hard limit (children inherit it); returns the limit. */
export function raiseFdLimit(): number {
  try {
    const hard = execFileSync("prlimit", ["--pid", String(process.pid), "--nofile", "-o", "HARD", "--noheadings"])
      .toString()
      .trim();
    execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${hard}:${hard}`]);
    return hard === "unlimited" ? Number.POSITIVE_INFINITY : Number(hard);
  } catch {
    return Number.NaN;
  }
}

/** The first match of `pattern` in what `cmd args` prints on stdout or stderr (ssh -V uses stderr). */
function version(cmd: string, args: string[], pattern: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 10_000 });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  return pattern.exec(out)?.[0] ?? "unknown";
}

export function toolVersions(): { node: string; openssh: string; socat: string; stunnel: string; kernel: string } {
  return {
    node: process.version,
    openssh: version("ssh", ["-V"], /OpenSSH_[^,\s]+(?:[^,\n]*, OpenSSL \S+)?/),
    socat: version("socat", ["-V"], /socat version \S+/),
    stunnel: version("stunnel", ["-version"], /stunnel \S+/),
    kernel: version("uname", ["-r"], /\S+/),
  };
}

export function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}
