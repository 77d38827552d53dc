// Connection set-up through an already open path: from connect() to the target's first byte (for
// the tunnel: a new gRPC call on the open stream, the agent's dial, the target's answer).
import type { BenchPath } from "../baselines/path.ts";
import { percentile, setupOnce } from "../workloads.ts";

export interface SetupRun {
  p50Us: number;
  p99Us: number;
}

export async function setup(path: BenchPath, count: number, timeoutMs: number): Promise<SetupRun> {
  const times: number[] = [];
  // Sequential, so each figure is one connection's latency and not a queue's.
  for (let i = 0; i < count; i++) times.push(await setupOnce(path.port, timeoutMs));
  times.sort((a, b) => a - b);
  return { p50Us: percentile(times, 50), p99Us: percentile(times, 99) };
}
