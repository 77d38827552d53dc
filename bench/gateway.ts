// `npm run bench:gateway`: the gateway scenarios alone (bench/scenarios/gateway.ts), for when the
// whole suite is not needed. `npm run bench` runs them too.
//   --smoke          100 idle connections, 50 set-ups, 8 MiB, 1 run
//   --idle N         idle connections held (default 10,000)
//   --setups N       new connections for the routing latency (default 2,000)
//   --mib N          MiB per single-connection transfer (default 256), --runs N (default 3)
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadAverage, raiseFdLimit } from "./procs.ts";
import { gatewayMarkdown, gatewayScenarios } from "./scenarios/gateway.ts";
import { startTarget } from "./target.ts";

const { values: a } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    idle: { type: "string" },
    setups: { type: "string" },
    mib: { type: "string" },
    runs: { type: "string" },
  },
});
const num = (v: string | undefined, full: number, small: number) => (v ? Number(v) : a.smoke ? small : full);
const fdLimit = raiseFdLimit();
const o = {
  idle: num(a.idle, 10_000, 100),
  setups: num(a.setups, 2_000, 50),
  bulkBytes: num(a.mib, 256, 8) * 2 ** 20,
  runs: num(a.runs, 3, 1),
  fdLimit,
  timeoutMs: 60_000,
};
const log = (s: string) => process.stderr.write(`${s}\n`);
const loadBefore = loadAverage();
log(`bench:gateway ${JSON.stringify(o)}; load average ${loadBefore}`);
const target = await startTarget();
try {
  const r = await gatewayScenarios(target.port, o, log);
  const md = `${gatewayMarkdown(r)}\nLoad average ${loadBefore} before, ${loadAverage()} after; fd limit ${fdLimit}.\n`;
  const dir = fileURLToPath(new URL(".", import.meta.url));
  writeFileSync(`${dir}gateway-results.json`, `${JSON.stringify({ ...r, options: o }, null, 2)}\n`);
  process.stdout.write(`\n${md}\nwrote bench/gateway-results.json\n`);
} finally {
  target.stop();
}
process.exit(0);
