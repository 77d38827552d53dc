// The gateway (`devicestreams gateway`, routing by TLS server name) in front of the bench target,
// against direct TCP in the same run: how long it takes to route a new connection, what it costs
// in throughput, and whether it holds many idle connections and at what memory. The driver sends
// a synthetic ClientHello first (bench/net.ts preamble); the gateway routes by it and replays it,
// the target skips it. No TLS past the ClientHello: the gateway never decrypts, so a real
// handshake would only add the endpoints' cost, not the gateway's.
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { clientHello } from "../../test/helpers/client-hello.ts";
import { type Gateway, startGateway } from "../../test/helpers/gateway.ts";
import { dial, firstByte, setPreamble } from "../net.ts";
import { cpuSeconds } from "../procs.ts";
import { download, percentile, setupOnce, upload } from "../workloads.ts";

export interface GatewayOptions {
  /** Idle connections held through the gateway. */
  idle: number;
  /** New connections, sequential, for the routing latency. */
  setups: number;
  /** Bytes of each single-connection transfer (each way). */
  bulkBytes: number;
  runs: number;
  /** The per-process file-descriptor limit (each routed connection takes two in the gateway). */
  fdLimit: number;
  timeoutMs: number;
}

export interface GatewayRun {
  idle: {
    attempted: number;
    ok: number;
    errors: string[];
    /** Gateway processes the idle connections were spread over (see `fdLimit`). */
    processes: number;
    openSeconds: number;
    rssBeforeKiB: number;
    rssOpenKiB: number;
    rssPerConnKiB: number;
  };
  /** Connect → the target's first byte, sequential new connections (µs). */
  setupP50Us: number;
  setupP99Us: number;
  directSetupP50Us: number;
  directSetupP99Us: number;
  /** The gateway's own accept → upstream connected, from its histogram (interpolated, µs). */
  routeP50Us: number;
  routeP99Us: number;
  /** Single connection, medians of the runs (bit/s). */
  upBps: number;
  downBps: number;
  directUpBps: number;
  directDownBps: number;
  /** Gateway CPU seconds per GB moved. */
  cpuSecondsPerGB: number;
}

const serverName = "bench.gateway.test";
const routeMetric = "devicestreams_gateway_route_duration_seconds_bucket";

async function start(targetPort: number): Promise<Gateway> {
  const g = await startGateway(
    [
      `--route=${serverName}=127.0.0.1:${targetPort}`,
      "--max-connections=50000",
      "--max-connections-per-source=50000",
      "--handshake-timeout=60s",
    ],
    // Info, not the tests' debug: 10,000 connections must not cost 10,000 log lines.
    { DEVICESTREAMS_LOG_LEVEL: "info" },
  );
  setPreamble(g.port, clientHello(serverName));
  return g;
}

/** Cumulative bucket counts of the route histogram, by upper bound in seconds. */
async function routeBuckets(g: Gateway): Promise<Array<[number, number]>> {
  const text = await (await fetch(`http://127.0.0.1:${g.metricsPort}/metrics`)).text();
  const out: Array<[number, number]> = [];
  for (const m of text.matchAll(new RegExp(`^${routeMetric}\\{le="([^"]+)"\\} (\\S+)$`, "gm"))) {
    out.push([m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])]);
  }
  return out;
}

/** A quantile from cumulative bucket deltas, linear within a bucket (as Prometheus's histogram_quantile). */
function quantile(before: Array<[number, number]>, after: Array<[number, number]>, q: number): number {
  const counts = after.map(([le, n], i) => [le, n - (before[i]?.[1] ?? 0)] as [number, number]);
  const total = counts.at(-1)?.[1] ?? 0;
  if (!total) return Number.NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, n] of counts) {
    if (n >= rank) {
      if (!Number.isFinite(le)) return lower * 1e6;
      return (lower + ((le - lower) * (rank - below)) / Math.max(n - below, 1)) * 1e6;
    }
    lower = le;
    below = n;
  }
  return Number.NaN;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function gatewayScenarios(
  targetPort: number,
  o: GatewayOptions,
  log: (s: string) => void,
): Promise<GatewayRun> {
  const g = await start(targetPort);
  const extra: Gateway[] = [];
  try {
    // Routing latency: sequential new connections, interleaved with direct ones.
    const before = await routeBuckets(g);
    const viaGateway: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < o.setups; i++) {
      viaGateway.push(await setupOnce(g.port, o.timeoutMs));
      direct.push(await setupOnce(targetPort, o.timeoutMs));
    }
    const after = await routeBuckets(g);
    viaGateway.sort((a, b) => a - b);
    direct.sort((a, b) => a - b);
    log(
      `gateway set-up ×${o.setups}: p50 ${percentile(viaGateway, 50).toFixed(0)} µs (direct ${percentile(direct, 50).toFixed(0)} µs)`,
    );

    // Throughput, one connection each way, interleaved with direct.
    const up: number[] = [];
    const down: number[] = [];
    const dUp: number[] = [];
    const dDown: number[] = [];
    const cpu0 = cpuSeconds([g.process.pid]);
    for (let run = 0; run < o.runs; run++) {
      up.push(await upload(g.port, o.bulkBytes, true, o.timeoutMs));
      dUp.push(await upload(targetPort, o.bulkBytes, true, o.timeoutMs));
      down.push(await download(g.port, o.bulkBytes, o.timeoutMs));
      dDown.push(await download(targetPort, o.bulkBytes, o.timeoutMs));
    }
    const cpu = cpuSeconds([g.process.pid]) - cpu0;
    log(`gateway bulk: up ${(median(up) / 1e9).toFixed(2)} Gbit/s (direct ${(median(dUp) / 1e9).toFixed(2)})`);

    // Idle connections. Each takes two descriptors in the gateway (client and upstream); a process
    // whose limit cannot hold them all gets a second replica, as the Deployment runs two.
    const perProcess = Math.floor((o.fdLimit - 200) / 2);
    const processes = Math.max(1, Math.ceil(o.idle / perProcess));
    for (let i = 1; i < processes; i++) extra.push(await start(targetPort));
    const gateways = [g, ...extra];
    const rss = () => gateways.reduce((n, x) => n + x.process.rssKiB(), 0);
    const idle = await holdIdle(
      gateways.map((x) => x.port),
      o.idle,
      o.timeoutMs,
      rss,
    );
    log(
      `gateway idle ${o.idle} over ${processes} process(es): ${idle.ok} held, ${idle.rssPerConnKiB.toFixed(1)} KiB each ${idle.errors.join("; ")}`,
    );
    return {
      idle: { ...idle, processes },
      setupP50Us: percentile(viaGateway, 50),
      setupP99Us: percentile(viaGateway, 99),
      directSetupP50Us: percentile(direct, 50),
      directSetupP99Us: percentile(direct, 99),
      routeP50Us: quantile(before, after, 0.5),
      routeP99Us: quantile(before, after, 0.99),
      upBps: median(up),
      downBps: median(down),
      directUpBps: median(dUp),
      directDownBps: median(dDown),
      cpuSecondsPerGB: cpu / ((2 * o.runs * o.bulkBytes) / 1e9),
    };
  } finally {
    for (const x of [g, ...extra]) {
      setPreamble(x.port, undefined);
      await x.process.stop();
    }
  }
}

// Several loopback source addresses, so 10,000 connections never run short of ephemeral ports.
const sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];

async function holdIdle(ports: number[], n: number, timeoutMs: number, rss: () => number) {
  const rssBeforeKiB = rss();
  const open: Socket[] = [];
  const errors = new Set<string>();
  let next = 0;
  const started = Date.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      try {
        const s = await dial(ports[i % ports.length]!, timeoutMs, sources[i % sources.length]);
        s.on("error", () => {});
        try {
          await firstByte(s, timeoutMs);
          open.push(s);
        } catch (e) {
          s.destroy();
          throw e;
        }
      } catch (e) {
        if (errors.size < 5) errors.add((e as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(200, n) }, worker));
  const openSeconds = (Date.now() - started) / 1000;
  await sleep(1000);
  const rssOpenKiB = rss();
  const ok = open.length;
  // Still all there after the settle: none was dropped while held.
  const held = open.filter((s) => !s.destroyed).length;
  if (held !== ok) errors.add(`${ok - held} closed while held`);
  for (const s of open) s.destroy();
  await sleep(Math.min(5000, 200 + ok / 5));
  return {
    attempted: n,
    ok: held,
    errors: [...errors],
    openSeconds,
    rssBeforeKiB,
    rssOpenKiB,
    rssPerConnKiB: ok ? (rssOpenKiB - rssBeforeKiB) / ok : Number.NaN,
  };
}

const gbit = (bps: number) => (bps / 1e9).toFixed(2);

/** The gateway's section of the report. */
export function gatewayMarkdown(r: GatewayRun): string {
  const i = r.idle;
  return [
    "### Gateway (SNI routing, `devicestreams gateway`)",
    "",
    "| figure | gateway | direct | ratio |",
    "| --- | ---: | ---: | ---: |",
    `| set-up p50 (µs) | ${r.setupP50Us.toFixed(0)} | ${r.directSetupP50Us.toFixed(0)} | ${(r.setupP50Us / r.directSetupP50Us).toFixed(2)} |`,
    `| set-up p99 (µs) | ${r.setupP99Us.toFixed(0)} | ${r.directSetupP99Us.toFixed(0)} | ${(r.setupP99Us / r.directSetupP99Us).toFixed(2)} |`,
    `| upload, 1 connection (Gbit/s) | ${gbit(r.upBps)} | ${gbit(r.directUpBps)} | ${(r.upBps / r.directUpBps).toFixed(2)} |`,
    `| download, 1 connection (Gbit/s) | ${gbit(r.downBps)} | ${gbit(r.directDownBps)} | ${(r.downBps / r.directDownBps).toFixed(2)} |`,
    "",
    `Route (accept → upstream connected, the gateway's histogram): p50 ${r.routeP50Us.toFixed(0)} µs, p99 ${r.routeP99Us.toFixed(0)} µs.`,
    `Gateway CPU: ${r.cpuSecondsPerGB.toFixed(2)} s per GB moved.`,
    `Idle: ${i.ok} of ${i.attempted} held (${i.processes} gateway process${i.processes > 1 ? "es" : ""}), opened in ${i.openSeconds.toFixed(1)} s;` +
      ` RSS ${(i.rssBeforeKiB / 1024).toFixed(0)} → ${(i.rssOpenKiB / 1024).toFixed(0)} MiB, ${i.rssPerConnKiB.toFixed(1)} KiB per connection` +
      `${i.errors.length ? `; errors: ${i.errors.join("; ")}` : ""}.`,
    "",
  ].join("\n");
}
