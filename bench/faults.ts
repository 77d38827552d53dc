// `npm run faults`: each fault injected into a running transfer, repeated, every transfer that
// claims success checked by SHA-256. A defect is a transfer that ends "successfully" with wrong
// bytes, or one with no outcome within the fault's budget (plus grace for a loaded machine);
// the run exits 1 on any defect. Figures: docs/resilience/faults.md (--out).
//   --smoke          2 reps per fault, 1–2 MiB, a 5 s API server outage (CI)
//   --reps N         reps per fault (default 20)
//   --faults a,b     a subset of: agent-kill, agent-stop, relay-kill, relay-term, leader-kill, apiserver-stop
//   --outage-s N     how long the API server stays down (default 60)
//   --out FILE       write the markdown report there
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { controlPlaneFaults, runControlPlaneFaults } from "./faults/control-plane.ts";
import { dataPlaneFaults, type FaultSpec, runDataPlaneFaults } from "./faults/data-plane.ts";
import type { RepResult } from "./faults/rep.ts";
import { loadAverage } from "./procs.ts";

const { values: a } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    reps: { type: "string" },
    faults: { type: "string" },
    "outage-s": { type: "string" },
    out: { type: "string" },
  },
});
const smoke = a.smoke!;
const all = [...dataPlaneFaults, ...controlPlaneFaults];
const names = a.faults ? a.faults.split(",") : all.map((f) => f.name);
for (const n of names) {
  if (!all.some((f) => f.name === n))
    throw new Error(`unknown fault ${n}; known: ${all.map((f) => f.name).join(", ")}`);
}
const reps = a.reps ? Number(a.reps) : smoke ? 2 : 20;
const outageMs = (a["outage-s"] ? Number(a["outage-s"]) : smoke ? 5 : 60) * 1000;
const mib = 2 ** 20;
const [minBytes, maxBytes] = smoke ? [1 * mib, 2 * mib] : [2 * mib, 6 * mib];
const bytesPerSecond = 2 * mib;
const graceMs = 10_000;
const log = (s: string) => process.stderr.write(`${s}\n`);

const results = new Map<string, RepResult[]>();
const outage: RepResult[] = [];
const startedAt = new Date();
const loadBefore = loadAverage();
const common = {
  reps,
  bytes: () => Math.round(minBytes + Math.random() * (maxBytes - minBytes)),
  bytesPerSecond,
  graceMs,
  onRep: (fault: string, i: number, r: RepResult) =>
    log(
      `${fault} #${i + 1}: ${r.kind}${r.afterFaultMs !== undefined ? ` ${r.afterFaultMs} ms after the fault` : ""} (${r.detail})`,
    ),
};
log(`faults: ${names.join(", ")}; ${reps} reps each; load average ${loadBefore}`);
for (const [k, v] of await runDataPlaneFaults(names, common)) results.set(k, v);
if (names.some((n) => controlPlaneFaults.some((f) => f.name === n))) {
  const cp = await runControlPlaneFaults(names, {
    ...common,
    outageMs,
    onOutageTransfer: (r) => {
      outage.push(r);
      log(`  during the outage: ${r.kind} (${r.detail})`);
    },
  });
  for (const [k, v] of cp) results.set(k, v);
}

const isDefect = (r: RepResult) => r.kind === "wrong-bytes" || r.kind === "hang";
const row = (f: FaultSpec, rs: RepResult[]) => {
  const count = (k: string) => rs.filter((r) => r.kind === k).length;
  const errs = rs.filter((r) => r.kind === "error" && r.afterFaultMs !== undefined).map((r) => r.afterFaultMs!);
  const max = errs.length ? Math.max(...errs) : undefined;
  const over = errs.filter((ms) => ms > f.budgetMs).length;
  return `| ${f.description} | ${rs.length} | ${rs.filter((r) => r.faultHit).length} | ${count("ok")} | ${count("error")} | ${count("wrong-bytes")} | ${count("hang")} | ${max ?? "–"} | ${(f.budgetMs / 1000).toFixed(0)} s: ${f.budgetWhy} | ${over} |`;
};
const lines = [
  "| fault | reps | hit mid-transfer | ok (SHA-256 equal) | error to the client | wrong bytes | hang | max ms fault→error | budget | errors after the budget |",
  "| --- | --: | --: | --: | --: | --: | --: | --: | --- | --: |",
  ...all.filter((f) => results.has(f.name)).map((f) => row(f, results.get(f.name)!)),
];
if (outage.length) {
  const count = (k: string) => outage.filter((r) => r.kind === k).length;
  lines.push(
    "",
    `Transfers run back to back while the API server was down (beyond the ones the stop hit): ${outage.length}; ok ${count("ok")}, error ${count("error")}, wrong bytes ${count("wrong-bytes")}, hang ${count("hang")}.`,
  );
}
const defects = [...results.values(), outage].flat().filter(isDefect);
lines.push(
  "",
  `Run ${startedAt.toISOString()}, ${Math.round((Date.now() - startedAt.getTime()) / 60_000)} min, ${cpus().length} CPUs, load average ${loadBefore} → ${loadAverage()}; transfers of ${minBytes / mib}–${maxBytes / mib} MiB at ${bytesPerSecond / mib} MiB/s${names.includes("apiserver-stop") ? `, API server outage ${outageMs / 1000} s` : ""}; a hang: no outcome within the budget + ${graceMs / 1000} s. Defects (wrong bytes or hang): ${defects.length}.`,
);
const table = lines.join("\n");
console.log(table);
if (a.out) writeFileSync(a.out, `${table}\n`);
for (const d of defects) log(`DEFECT: ${d.kind}: ${d.detail}`);
process.exit(defects.length ? 1 : 0);
