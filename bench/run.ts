// `npm run bench`: figures for the tunnel against direct TCP, measured in one run on one machine
// and reported as ratios (absolute numbers vary too much between machines to compare).
// `--smoke` runs tiny sizes once, to keep the benchmark from rotting in CI.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { startDataPlane } from "../test/helpers/dataplane.ts";
import { median, percentile, roundTrips, startEcho, startSink, throughput } from "./workloads.ts";

const smoke = process.argv.includes("--smoke");
const runs = smoke ? 1 : 5;
const bulkBytes = smoke ? 8 * 1024 * 1024 : 1024 * 1024 * 1024;
const pings = smoke ? 200 : 5000;

const sink = await startSink();
const echo = await startEcho();
const plane = await startDataPlane({
  service: "sink",
  allow: [`sink=127.0.0.1:${sink.port}`, `echo=127.0.0.1:${echo.port}`],
});
const echoPlane = await startDataPlane({ service: "echo", allow: [`echo=127.0.0.1:${echo.port}`] });

const results = {
  direct: { throughputBps: [] as number[], rttP50Us: [] as number[], rttP99Us: [] as number[] },
  tunnel: { throughputBps: [] as number[], rttP50Us: [] as number[], rttP99Us: [] as number[] },
};
try {
  // Interleaved, so a slow moment of the machine hits both sides alike.
  for (let i = 0; i < runs; i++) {
    results.direct.throughputBps.push(await throughput(sink.port, bulkBytes));
    results.tunnel.throughputBps.push(await throughput(plane.client.port, bulkBytes));
    const d = await roundTrips(echo.port, pings);
    const t = await roundTrips(echoPlane.client.port, pings);
    results.direct.rttP50Us.push(percentile(d, 50));
    results.direct.rttP99Us.push(percentile(d, 99));
    results.tunnel.rttP50Us.push(percentile(t, 50));
    results.tunnel.rttP99Us.push(percentile(t, 99));
    process.stderr.write(`run ${i + 1}/${runs} done\n`);
  }
} finally {
  await plane.stop();
  await echoPlane.stop();
  sink.server.close();
  echo.server.close();
}

const m = (xs: number[]) => median(xs);
const summary = {
  throughput_single_vs_direct: m(results.tunnel.throughputBps) / m(results.direct.throughputBps),
  rtt_p50_vs_direct: m(results.tunnel.rttP50Us) / m(results.direct.rttP50Us),
  rtt_p99_vs_direct: m(results.tunnel.rttP99Us) / m(results.direct.rttP99Us),
};
const gbit = (bps: number) => (bps / 1e9).toFixed(2);
const rows = [
  ["figure", "direct TCP", "tunnel", "tunnel ÷ direct"],
  ["---", "---:", "---:", "---:"],
  [
    "throughput, 1 connection (Gbit/s)",
    gbit(m(results.direct.throughputBps)),
    gbit(m(results.tunnel.throughputBps)),
    summary.throughput_single_vs_direct.toFixed(3),
  ],
  [
    "64-byte round trip p50 (µs)",
    m(results.direct.rttP50Us).toFixed(1),
    m(results.tunnel.rttP50Us).toFixed(1),
    summary.rtt_p50_vs_direct.toFixed(2),
  ],
  [
    "64-byte round trip p99 (µs)",
    m(results.direct.rttP99Us).toFixed(1),
    m(results.tunnel.rttP99Us).toFixed(1),
    summary.rtt_p99_vs_direct.toFixed(2),
  ],
];
const environment = {
  node: process.version,
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
  kernel: execFileSync("uname", ["-r"]).toString().trim(),
  runs,
  bulkBytes,
  pings,
  smoke,
};
const table = rows.map((r) => `| ${r.join(" | ")} |`).join("\n");
const markdown = `${table}\n\nMedians of ${runs} interleaved runs; ${bulkBytes / 2 ** 20} MiB per throughput run, ${pings} round trips per latency run. Node ${environment.node}, ${environment.cpus}.\n`;
const dir = fileURLToPath(new URL(".", import.meta.url));
writeFileSync(`${dir}results.json`, `${JSON.stringify({ summary, results, environment }, null, 2)}\n`);
writeFileSync(`${dir}results.md`, markdown);
process.stdout.write(`\n${markdown}\nwrote bench/results.json and bench/results.md\n`);
