// Bulk transfers through the tunnel alone (optionally `ssh -R` too), with the CPU per GB of its
// three components per direction: the quick loop for A/B-testing a data-plane change. Run it from
// two worktrees in turn (docs/benchmarks.md, "What we tried"); `npm run bench` is the full suite.
//   node bench/tunnel-bulk.ts [--mib 512] [--runs 2] [--ssh] [--bastion]
import { parseArgs } from "node:util";
import { bastionChain } from "./baselines/bastion-chain.ts";
import type { BenchPath } from "./baselines/path.ts";
import { sshReverse } from "./baselines/ssh-reverse.ts";
import { tunnel } from "./baselines/tunnel.ts";
import { cpuSeconds } from "./procs.ts";
import { startTarget } from "./target.ts";
import { download, parallelUpload, upload } from "./workloads.ts";

const { values: a } = parseArgs({
  options: {
    mib: { type: "string", default: "512" },
    runs: { type: "string", default: "2" },
    ssh: { type: "boolean" },
    bastion: { type: "boolean" },
  },
});
const bytes = Number(a.mib) * 2 ** 20;
const timeoutMs = 600_000;
const target = await startTarget();
const paths: BenchPath[] = [await tunnel(target.port)];
if (a.ssh) paths.push(await sshReverse(target.port));
if (a.bastion) paths.push(await bastionChain(target.port));

/**
 * Runs `work` and returns its bits per second and the path's CPU seconds per 1e9 bytes moved, with
 * each named component's share where the path has them (relay, agent, client).
 */
async function measured(p: BenchPath, work: () => Promise<number>): Promise<string> {
  const parts = Object.entries(p.parts?.() ?? {});
  const cpu0 = cpuSeconds(p.pids());
  const part0 = parts.map(([, pid]) => cpuSeconds([pid]));
  const bps = await work();
  const gb = bytes / 1e9;
  const perGB = (cpuSeconds(p.pids()) - cpu0) / gb;
  const each = parts.map(([name, pid], i) => `${name} ${((cpuSeconds([pid]) - part0[i]!) / gb).toFixed(2)}`);
  return `${(bps / 1e9).toFixed(2)} Gbit/s (${perGB.toFixed(2)} CPU-s/GB${each.length ? `: ${each.join(", ")}` : ""})`;
}

try {
  for (let run = 0; run < Number(a.runs); run++) {
    for (const p of paths) {
      const up = await measured(p, () => upload(p.port, bytes, false, timeoutMs));
      const down = await measured(p, () => download(p.port, bytes, timeoutMs));
      const par = await measured(p, () => parallelUpload(p.port, 8, bytes / 8, timeoutMs));
      console.log(`${p.name}: up ${up}, down ${down}, 8 connections ${par}`);
    }
  }
} finally {
  for (const p of paths) await p.stop();
  await target.stop();
}
