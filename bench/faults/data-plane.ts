// Faults of the data plane's processes (agent and relay) during a transfer, on loopback with real
// processes and TLS: a fresh relay, agent and client per repetition, so that no repetition
// inherits the damage of the one before.
import type { ComponentProcess } from "../../test/helpers/component-process.ts";
import { type DataPlane, startDataPlane } from "../../test/helpers/dataplane.ts";
import { echoServer, type TcpTarget } from "../../test/helpers/tcp-targets.ts";
import { type RepResult, randomBetween, runRep } from "./rep.ts";

export interface FaultSpec {
  name: string;
  description: string;
  /** The time within which a failure must reach the user (ms). */
  budgetMs: number;
  budgetWhy: string;
}

export const keepalive = { timeMs: 2000, timeoutMs: 2000 };
export const drainMs = 2000;
const keepaliveFlags = ["--keepalive-time", "2s", "--keepalive-timeout", "2s"];
const keepaliveBudget = keepalive.timeMs + keepalive.timeoutMs;

interface DataPlaneFault extends FaultSpec {
  inject(p: DataPlane, later: (f: () => void, ms: number) => void): void;
}

const freeze = (p: ComponentProcess, later: (f: () => void, ms: number) => void) => {
  p.signal("SIGSTOP");
  // Frozen for 0.5 to 2 keepalive budgets: some come back before keepalive gives up, some after.
  later(() => p.signal("SIGCONT"), randomBetween(500, 2 * keepaliveBudget));
};

export const dataPlaneFaults: DataPlaneFault[] = [
  {
    name: "agent-kill",
    description: "agent `kill -9`",
    budgetMs: keepaliveBudget,
    budgetWhy: "keepalive (2 s + 2 s)",
    inject: (p) => p.agent.process.signal("SIGKILL"),
  },
  {
    name: "agent-stop",
    description: "agent `SIGSTOP`, `SIGCONT` 0.5–8 s later",
    budgetMs: keepaliveBudget,
    budgetWhy: "keepalive (2 s + 2 s)",
    inject: (p, later) => freeze(p.agent.process, later),
  },
  {
    name: "relay-kill",
    description: "relay `kill -9`",
    budgetMs: keepaliveBudget,
    budgetWhy: "keepalive (2 s + 2 s)",
    inject: (p) => p.relay.process.signal("SIGKILL"),
  },
  {
    name: "relay-term",
    description: "relay SIGTERM (drain: refuse new connections, let open ones finish for 2 s)",
    budgetMs: drainMs + keepaliveBudget,
    budgetWhy: "drain timeout (2 s) + keepalive (2 s + 2 s)",
    inject: (p) => p.relay.process.signal("SIGTERM"),
  },
];

export interface LoopOptions {
  reps: number;
  bytes: () => number;
  bytesPerSecond: number;
  /** Extra time past the budget before an outcome counts as a hang (a loaded machine is slow). */
  graceMs: number;
  onRep(fault: string, i: number, r: RepResult): void;
}

export async function runDataPlaneFaults(names: string[], o: LoopOptions): Promise<Map<string, RepResult[]>> {
  const results = new Map<string, RepResult[]>();
  const target: TcpTarget = await echoServer();
  try {
    for (const fault of dataPlaneFaults.filter((f) => names.includes(f.name))) {
      const reps: RepResult[] = [];
      results.set(fault.name, reps);
      for (let i = 0; i < o.reps; i++) {
        const plane = await startDataPlane({
          service: "echo",
          allow: [`echo=${target.address}`],
          relayArgs: [...keepaliveFlags, "--drain-timeout", `${drainMs / 1000}s`],
          agentArgs: keepaliveFlags,
          clientArgs: keepaliveFlags,
        });
        const timers: NodeJS.Timeout[] = [];
        try {
          const bytes = o.bytes();
          const r = await runRep({
            port: plane.client.port,
            bytes,
            bytesPerSecond: o.bytesPerSecond,
            faultDelayMs: randomBetween(100, (bytes / o.bytesPerSecond) * 1000 * 0.9),
            inject: () => fault.inject(plane, (f, ms) => timers.push(setTimeout(f, ms))),
            hangAfterMs: fault.budgetMs + o.graceMs,
          });
          reps.push(r);
          o.onRep(fault.name, i, r);
          if (r.kind === "wrong-bytes" || r.kind === "hang") {
            process.stderr.write(`----- logs of ${fault.name} rep ${i} -----\n${plane.logs().slice(-20_000)}\n`);
          }
        } finally {
          for (const t of timers) clearTimeout(t);
          for (const p of plane.processes()) p.signal("SIGCONT");
          await plane.stop();
        }
      }
    }
  } finally {
    await target.close();
  }
  return results;
}
