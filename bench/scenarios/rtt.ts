// 64-byte ping-pong round trips on one connection, idle and while another connection on the same
// path (for the tunnel: the same stream, the same HTTP/2 connections) uploads as fast as it can:
// the head-of-line check. The load runs in its own process so the driver's loop only pings.
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchPath } from "../baselines/path.ts";
import { startBlast } from "../blast.ts";
import { percentile, roundTrips } from "../workloads.ts";

export interface RttRun {
  idleP50Us: number;
  idleP99Us: number;
  loadP50Us: number;
  loadP99Us: number;
}

export async function rtt(path: BenchPath, pings: number, timeoutMs: number): Promise<RttRun> {
  const idle = await roundTrips(path.port, pings, 200, timeoutMs);
  const blaster = await startBlast(path.port);
  try {
    // Let the bulk connection reach its steady rate (windows open) before pinging.
    await sleep(300);
    const loaded = await roundTrips(path.port, pings, 200, timeoutMs);
    return {
      idleP50Us: percentile(idle, 50),
      idleP99Us: percentile(idle, 99),
      loadP50Us: percentile(loaded, 50),
      loadP99Us: percentile(loaded, 99),
    };
  } finally {
    blaster.kill("SIGKILL");
  }
}
