// Many concurrent idle connections through one path: how many work (each gets the target's first
// byte) and what each costs in RSS per forwarding component while all are open.
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchPath } from "../baselines/path.ts";
import { dial, firstByte } from "../net.ts";

export interface IdleRun {
  attempted: number;
  ok: number;
  /** First few distinct failure reasons, for the report. */
  errors: string[];
  openSeconds: number;
  rssBeforeKiB: Record<string, number>;
  rssOpenKiB: Record<string, number>;
  /** (RSS with all open − RSS before) ÷ working connections, per component. */
  rssPerConnKiB: Record<string, number>;
}

// Connections from several loopback source addresses, so 10,000 never run short of ephemeral ports.
const sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];

async function openOne(port: number, i: number, timeoutMs: number): Promise<Socket> {
  const s = await dial(port, timeoutMs, sources[i % sources.length]);
  try {
    await firstByte(s, timeoutMs);
  } catch (e) {
    s.destroy();
    throw e;
  }
  s.on("error", () => {});
  return s;
}

export async function idle(path: BenchPath, n: number, concurrency: number, timeoutMs: number): Promise<IdleRun> {
  const rssBeforeKiB = path.rss();
  const open: Socket[] = [];
  const errors = new Set<string>();
  let next = 0;
  const started = Date.now();
  const worker = async () => {
    // Each worker takes the next index until all n are tried: bounded by n.
    while (next < n) {
      const i = next++;
      try {
        open.push(await openOne(path.port, i, timeoutMs));
      } catch (e) {
        if (errors.size < 5) errors.add((e as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  const openSeconds = (Date.now() - started) / 1000;
  // Let the components settle (buffers freed, logs flushed) before reading RSS.
  await sleep(1000);
  const rssOpenKiB = path.rss();
  const ok = open.length;
  for (const s of open) s.destroy();
  const rssPerConnKiB: Record<string, number> = {};
  for (const [k, v] of Object.entries(rssOpenKiB))
    rssPerConnKiB[k] = ok ? (v - (rssBeforeKiB[k] ?? 0)) / ok : Number.NaN;
  // Give the components a moment to tear the connections down before the next scenario.
  await sleep(Math.min(5000, 200 + ok / 5));
  return { attempted: n, ok, errors: [...errors], openSeconds, rssBeforeKiB, rssOpenKiB, rssPerConnKiB };
}
