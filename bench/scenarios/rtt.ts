// 64-byte ping-pong round trips on one connection, idle and while another connection on the same
// path (for the tunnel: the same stream, the same HTTP/2 connections) uploads: as fast as it can
// (the head-of-line check, `rtt_p99_load_vs_idle` in docs/benchmarks.md), and paced to `pacedMbit`, a rate every path
// carries with cores to spare, so that queueing behind the bulk connection shows apart from two
// cores being busy. The load runs in its own process so the driver's loop only pings.
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchPath } from "../baselines/path.ts";
import { startBlast } from "../blast.ts";
import { percentile, roundTrips } from "../workloads.ts";

export interface RttRun {
  idleP50Us: number;
  idleP99Us: number;
  loadP50Us: number;
  loadP99Us: number;
  pacedP50Us: number;
  pacedP99Us: number;
}

/** The paced load's rate: ~15 % of what the tunnel carries on one connection on 2 cores. */
export const pacedMbit = 200;

async function underLoad(path: BenchPath, mbit: number, pings: number, timeoutMs: number): Promise<number[]> {
  const blaster = await startBlast(path.port, mbit);
  try {
    // Let the bulk connection reach its steady rate (windows open) before pinging.
    await sleep(300);
    return await roundTrips(path.port, pings, 200, timeoutMs);
  } finally {
    blaster.kill("SIGKILL");
  }
}

export async function rtt(path: BenchPath, pings: number, timeoutMs: number): Promise<RttRun> {
  const idle = await roundTrips(path.port, pings, 200, timeoutMs);
  const loaded = await underLoad(path, 0, pings, timeoutMs);
  const paced = await underLoad(path, pacedMbit, pings, timeoutMs);
  return {
    idleP50Us: percentile(idle, 50),
    idleP99Us: percentile(idle, 99),
    loadP50Us: percentile(loaded, 50),
    loadP99Us: percentile(loaded, 99),
    pacedP50Us: percentile(paced, 50),
    pacedP99Us: percentile(paced, 99),
  };
}
