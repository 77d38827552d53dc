// `npm run bench`: the tunnel against direct TCP, `ssh -R` (default cipher and aes128-gcm), the
// OpenSSH bastion chain (ssh -L → sshd → ssh -R), a stunnel chain and a socat chain, all measured in one run on one machine and reported as ratios (absolute numbers
// vary too much between machines to compare). Figures are medians of interleaved runs.
//   --smoke     tiny sizes, 1 run, 100 idle connections (CI keeps the benchmark from rotting)
//   --runs N    interleaved runs (default 5)
//   --single-mib N, --parallel-mib N (per connection), --pings N, --setups N
//   --idle 1000,10000   idle-connection counts through the tunnel
//   --stream-opens N    DeviceStreams created to first byte, against a real kube-apiserver
//                       (default 20, 3 with --smoke; 0 skips it), once after the other scenarios
//   --gateway-idle N, --gateway-setups N, --gateway-mib N
//                       the gateway's scenarios (10,000 idle, 2,000 set-ups, 256 MiB; 100, 50, 8 with
//                       --smoke; --gateway-setups 0 skips them); `npm run bench:gateway` runs them alone
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { bastionChain } from "./baselines/bastion-chain.ts";
import { direct } from "./baselines/direct.ts";
import type { BenchPath } from "./baselines/path.ts";
import { socatChain, socatLegs } from "./baselines/socat-chain.ts";
import { sshReverse } from "./baselines/ssh-reverse.ts";
import { stunnelChain } from "./baselines/stunnel-chain.ts";
import { tunnel } from "./baselines/tunnel.ts";
import { loadAverage, raiseFdLimit, toolVersions } from "./procs.ts";
import { markdown, medians, type Samples, summarize } from "./report.ts";
import { bulk } from "./scenarios/bulk.ts";
import { type GatewayRun, gatewayMarkdown, gatewayScenarios } from "./scenarios/gateway.ts";
import { type IdleRun, idle } from "./scenarios/idle.ts";
import { rtt } from "./scenarios/rtt.ts";
import { setup } from "./scenarios/setup.ts";
import { type StreamOpenRun, streamOpen, streamOpenPrerequisites } from "./scenarios/stream-open.ts";
import { startTarget } from "./target.ts";

const { values: a } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    runs: { type: "string" },
    "single-mib": { type: "string" },
    "parallel-mib": { type: "string" },
    pings: { type: "string" },
    setups: { type: "string" },
    idle: { type: "string" },
    "stream-opens": { type: "string" },
    "gateway-idle": { type: "string" },
    "gateway-setups": { type: "string" },
    "gateway-mib": { type: "string" },
  },
});
const smoke = a.smoke!;
const num = (v: string | undefined, full: number, small: number) => (v ? Number(v) : smoke ? small : full);
const o = {
  runs: num(a.runs, 5, 1),
  singleBytes: num(a["single-mib"], 1024, 8) * 2 ** 20,
  parallelBytes: num(a["parallel-mib"], 128, 1) * 2 ** 20,
  parallel: 8,
  pings: num(a.pings, 5000, 200),
  setups: num(a.setups, 1000, 50),
  idle: (a.idle ?? (smoke ? "100" : "1000,10000")).split(",").map(Number),
  streamOpens: num(a["stream-opens"], 20, 3),
  gatewayIdle: num(a["gateway-idle"], 10_000, 100),
  gatewaySetups: num(a["gateway-setups"], 2_000, 50),
  gatewayBytes: num(a["gateway-mib"], 256, 8) * 2 ** 20,
};
// Generous per-operation deadlines: a stall fails the run instead of hanging it.
const timeoutMs = Math.max(60_000, (o.singleBytes / 2 ** 20) * 500);

const fdLimit = raiseFdLimit();
const loadBefore = loadAverage();
const log = (s: string) => process.stderr.write(`${s}\n`);
log(`bench: ${JSON.stringify(o)}; fd limit ${fdLimit}; load average ${loadBefore}`);

// Before the other scenarios: a missing control plane fails the run at once, naming the fix.
if (o.streamOpens > 0) await streamOpenPrerequisites();

const target = await startTarget();
const paths: BenchPath[] = [];
const samples: Samples = {};
const idleRuns: Record<string, IdleRun[]> = {};
let streamOpened: StreamOpenRun | undefined;
let gatewayRun: GatewayRun | undefined;
/** A failed measurement names its path and scenario (it still fails the run: a broken path is a finding). */
async function named<T>(p: BenchPath, scenario: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    throw new Error(`${scenario} over ${p.name}: ${(e as Error).message}`, { cause: e });
  }
}
const push = (path: string, figs: Record<string, number>) => {
  samples[path] ??= {};
  const figures = samples[path];
  for (const [k, v] of Object.entries(figs)) {
    figures[k] ??= [];
    figures[k].push(v);
  }
};
try {
  paths.push(direct(target.port));
  paths.push(await tunnel(target.port));
  paths.push(await sshReverse(target.port));
  paths.push(await sshReverse(target.port, "aes128-gcm@openssh.com"));
  paths.push(await bastionChain(target.port));
  paths.push(await stunnelChain(target.port));
  paths.push(await socatChain(target.port));
  for (const p of paths) log(`  ${p.name}: ${p.detail} (pids ${p.pids().join(" ")})`);

  for (let run = 0; run < o.runs; run++) {
    // Interleaved, and each run starts with a different path, so a slow moment of a shared
    // machine does not always land on the same one.
    const order = paths.map((_, i) => paths[(i + run) % paths.length]!);
    for (const p of order) push(p.name, { ...(await named(p, "bulk", bulk(p, { ...o, timeoutMs }))) });
    for (const p of order) push(p.name, { ...(await named(p, "round trips", rtt(p, o.pings, timeoutMs))) });
    for (const p of order) {
      const r = await named(p, "set-up", setup(p, o.setups, timeoutMs));
      push(p.name, { setupP50Us: r.p50Us, setupP99Us: r.p99Us });
    }
    log(`run ${run + 1}/${o.runs} done (load average ${loadAverage()})`);
  }

  // Idle connections: the tunnel at each count; ssh -R (default) at the smallest, for scale.
  const tun = paths.find((p) => p.name === "tunnel")!;
  const ssh = paths.find((p) => p.name === "ssh-default")!;
  idleRuns.tunnel = [];
  for (const n of o.idle) {
    const r = await idle(tun, n, 200, 30_000);
    idleRuns.tunnel.push(r);
    log(`idle ${n} through the tunnel: ${r.ok} worked in ${r.openSeconds.toFixed(1)} s ${r.errors.join("; ")}`);
  }
  idleRuns["ssh-default"] = [await idle(ssh, Math.min(...o.idle), 200, 30_000)];

  // The gateway against direct TCP, its own interleaving (its paths are not the tunnel's baselines).
  if (o.gatewaySetups > 0) {
    gatewayRun = await gatewayScenarios(
      target.port,
      {
        idle: o.gatewayIdle,
        setups: o.gatewaySetups,
        bulkBytes: o.gatewayBytes,
        runs: o.runs,
        fdLimit: Number.isFinite(fdLimit) ? fdLimit : 1_000_000,
        timeoutMs,
      },
      log,
    );
  }

  if (o.streamOpens > 0) {
    const started = Date.now();
    try {
      streamOpened = await streamOpen(o.streamOpens, log);
    } catch (e) {
      throw new Error(`stream-open: ${(e as Error).message}`, { cause: e });
    }
    const so = streamOpened;
    log(
      `stream-open ×${so.opens} in ${((Date.now() - started) / 1000).toFixed(1)} s: p50 ${so.withoutPodP50Ms} ms without relay Pod start (${so.totalP50Ms} ms in all), ssh -N -R p50 ${so.sshOpenP50Ms} ms`,
    );
  }
} finally {
  for (const p of paths) await p.stop();
  target.stop();
}

const m = medians(samples);
const largest = idleRuns.tunnel?.at(-1);
const summary = summarize(m, largest, streamOpened);
const loadAfter = loadAverage();
const environment = {
  ...toolVersions(),
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
  loadAverageBefore: loadBefore,
  loadAverageAfter: loadAfter,
  fdLimit,
  smoke,
  ...o,
  socatLegs,
  paths: Object.fromEntries(paths.map((p) => [p.name, p.detail])),
};
const notes = [
  `Medians of ${o.runs} interleaved run(s); ${o.singleBytes / 2 ** 20} MiB per single-connection transfer (SHA-256 checked),`,
  `${o.parallel} × ${o.parallelBytes / 2 ** 20} MiB for the parallel one (count checked), ${o.pings} round trips, ${o.setups} set-ups.`,
  `\`rss_per_conn_kib_10k\` and \`conns_10k_ok\` come from the ${largest?.attempted ?? 0}-connection run.`,
  streamOpened
    ? `\`stream_open_*\`: ${streamOpened.opens} DeviceStreams against a real kube-apiserver, relay Pods run by the kubelet stand-in; ssh -N -R interleaved.`
    : "DeviceStream created → first byte: skipped (--stream-opens 0).",
  `${environment.cpus}; Node ${environment.node}; ${environment.openssh}; ${environment.socat}; ${environment.stunnel}; kernel ${environment.kernel}.`,
  `Load average (1, 5, 15 min) ${loadBefore} before, ${loadAfter} after${smoke ? "; smoke run: sizes too small to compare" : ""}.`,
];
const md = `${markdown(m, idleRuns, summary, notes, streamOpened)}${gatewayRun ? `\n${gatewayMarkdown(gatewayRun)}` : ""}`;
const dir = fileURLToPath(new URL(".", import.meta.url));
writeFileSync(
  `${dir}results.json`,
  `${JSON.stringify({ summary, medians: m, samples, idle: idleRuns, streamOpen: streamOpened ?? null, gateway: gatewayRun ?? null, environment }, null, 2)}\n`,
);
writeFileSync(`${dir}results.md`, md);
process.stdout.write(`\n${md}\nwrote bench/results.json and bench/results.md\n`);
// Children (target, forwarders) are killed on exit; do not wait for stray sockets.
process.exit(0);
