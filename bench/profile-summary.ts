// Sums the self time of a V8 .cpuprofile (node --cpu-prof) by function and script, to see where
// one component of the tunnel spends its CPU during a transfer (docs/benchmarks.md, "Profile").
//   node bench/profile-summary.ts PROFILE.cpuprofile [--top 25]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values: a, positionals } = parseArgs({
  options: { top: { type: "string", default: "25" } },
  allowPositionals: true,
});
for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const f = byId.get(id)!.callFrame;
    const url = f.url.replace(/^.*\/(node_modules\/|wt\/[^/]+\/)/, "");
    const key = `${f.functionName || "(anonymous)"} ${url}${url ? `:${f.lineNumber + 1}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  // Idle is time the event loop waited, not work: shares are of the busy time.
  const busy = total - (self.get("(idle) ") ?? 0);
  console.log(`${file}: ${(busy / 1e6).toFixed(2)} s busy of ${(total / 1e6).toFixed(2)} s`);
  const top = [...self].filter(([k]) => k !== "(idle) ").sort((x, y) => y[1] - x[1]);
  for (const [key, us] of top.slice(0, Number(a.top))) {
    console.log(`${((100 * us) / busy).toFixed(1).padStart(5)} %  ${key}`);
  }
}
