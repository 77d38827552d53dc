// Bulk transfer over one path in one run: one connection each direction (SHA-256 checked), then 8
// connections at once (count checked); and the CPU the path's forwarders spent per GB moved.
import type { BenchPath } from "../baselines/path.ts";
import { cpuSeconds } from "../procs.ts";
import { download, parallelUpload, upload } from "../workloads.ts";

export interface BulkSizes {
  singleBytes: number;
  /** Per connection of the 8. */
  parallelBytes: number;
  parallel: number;
  timeoutMs: number;
}

export interface BulkRun {
  upBps: number;
  downBps: number;
  parallelBps: number;
  /** Forwarders' CPU seconds per 1e9 bytes delivered; NaN for direct (no forwarder). */
  cpuSecondsPerGB: number;
}

export async function bulk(path: BenchPath, o: BulkSizes): Promise<BulkRun> {
  const pids = path.pids();
  const cpu0 = cpuSeconds(pids);
  const upBps = await upload(path.port, o.singleBytes, true, o.timeoutMs);
  const downBps = await download(path.port, o.singleBytes, o.timeoutMs);
  const parallelBps = await parallelUpload(path.port, o.parallel, o.parallelBytes, o.timeoutMs);
  const moved = 2 * o.singleBytes + o.parallel * o.parallelBytes;
  const cpu = cpuSeconds(pids) - cpu0;
  return { upBps, downBps, parallelBps, cpuSecondsPerGB: pids.length ? cpu / (moved / 1e9) : Number.NaN };
}
