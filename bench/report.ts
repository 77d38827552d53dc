// Turns the per-run figures into medians, the summary ratios (targets in docs/benchmarks.md) and a
// markdown table.
import type { IdleRun } from "./scenarios/idle.ts";
import { pacedMbit } from "./scenarios/rtt.ts";
import type { StreamOpenRun } from "./scenarios/stream-open.ts";
import { median } from "./workloads.ts";

/** Per path, per figure: one value per run. */
export type Samples = Record<string, Record<string, number[]>>;

export const pathOrder = ["direct", "tunnel", "ssh-default", "ssh-aes128-gcm", "bastion", "stunnel", "socat"] as const;
const headers: Record<string, string> = {
  direct: "direct TCP",
  tunnel: "tunnel",
  "ssh-default": "ssh -R (default)",
  "ssh-aes128-gcm": "ssh -R aes128-gcm",
  bastion: "ssh bastion chain",
  stunnel: "stunnel chain",
  socat: "socat chain",
};

interface Figure {
  key: string;
  label: string;
  scale: (v: number) => number;
  digits: number;
}
const gbit = (v: number) => v / 1e9;
const same = (v: number) => v;
export const figures: Figure[] = [
  { key: "upBps", label: "throughput, 1 connection, to the device (Gbit/s)", scale: gbit, digits: 2 },
  { key: "downBps", label: "throughput, 1 connection, from the device (Gbit/s)", scale: gbit, digits: 2 },
  { key: "parallelBps", label: "throughput, 8 connections (Gbit/s)", scale: gbit, digits: 2 },
  { key: "idleP50Us", label: "64-byte round trip p50, idle (µs)", scale: same, digits: 1 },
  { key: "idleP99Us", label: "64-byte round trip p99, idle (µs)", scale: same, digits: 1 },
  { key: "loadP50Us", label: "64-byte round trip p50, bulk on the same path (µs)", scale: same, digits: 1 },
  { key: "loadP99Us", label: "64-byte round trip p99, bulk on the same path (µs)", scale: same, digits: 1 },
  {
    key: "pacedP50Us",
    label: `64-byte round trip p50, ${pacedMbit} Mbit/s on the same path (µs)`,
    scale: same,
    digits: 1,
  },
  {
    key: "pacedP99Us",
    label: `64-byte round trip p99, ${pacedMbit} Mbit/s on the same path (µs)`,
    scale: same,
    digits: 1,
  },
  { key: "setupP50Us", label: "connection set-up to first byte p50 (µs)", scale: same, digits: 0 },
  { key: "setupP99Us", label: "connection set-up to first byte p99 (µs)", scale: same, digits: 0 },
  { key: "cpuSecondsPerGB", label: "forwarders' CPU seconds per GB", scale: same, digits: 2 },
];

export function medians(samples: Samples): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [path, figs] of Object.entries(samples)) {
    out[path] = {};
    for (const [k, xs] of Object.entries(figs)) out[path]![k] = median(xs);
  }
  return out;
}

export interface Summary {
  throughput_single_vs_ssh: number;
  throughput_8conn_vs_ssh: number;
  rtt_p50_added_vs_ssh: number;
  rtt_p99_load_vs_idle: number;
  /** The same with the load paced (bench/scenarios/rtt.ts): queueing, without two cores saturated. */
  rtt_p99_paced_load_vs_idle: number;
  /** The like-for-like peers (issue 13): the OpenSSH bastion chain and three stunnel processes. */
  throughput_single_vs_bastion: number;
  throughput_8conn_vs_bastion: number;
  throughput_single_vs_stunnel_chain: number;
  cpu_per_gb_vs_bastion: number;
  rtt_p50_added_vs_bastion: number;
  /** p99 round trip under a full-speed copy, against the same figure for `ssh -R`. */
  rtt_p99_load_vs_ssh_load: number;
  rss_per_conn_kib_10k: number;
  conns_10k_ok: number;
  /** Absent when the run skipped the stream-open scenario (`--stream-opens 0`). */
  stream_open_p50_ms?: number;
  stream_open_vs_ssh?: number;
}

/**
 * The summary ratios, each with its target in docs/benchmarks.md; `largestIdle` is the 10,000-connection run (100 in a smoke run),
 * `streamOpen` the DeviceStream-created-to-first-byte scenario if it ran.
 */
export function summarize(
  m: Record<string, Record<string, number>>,
  largestIdle: IdleRun | undefined,
  streamOpen?: StreamOpenRun,
): Summary {
  const t = m.tunnel!;
  const s = m["ssh-default"]!;
  const d = m.direct!;
  const b = m.bastion ?? {};
  const st = m.stunnel ?? {};
  // The weaker direction, so a fast upload cannot hide a slow download.
  const single = (peer: Record<string, number>) => Math.min(t.upBps! / peer.upBps!, t.downBps! / peer.downBps!);
  return {
    // The weaker direction, so a fast upload cannot hide a slow download.
    throughput_single_vs_ssh: Math.min(t.upBps! / s.upBps!, t.downBps! / s.downBps!),
    throughput_8conn_vs_ssh: t.parallelBps! / s.parallelBps!,
    rtt_p50_added_vs_ssh: (t.idleP50Us! - d.idleP50Us!) / (s.idleP50Us! - d.idleP50Us!),
    rtt_p99_load_vs_idle: t.loadP99Us! / t.idleP99Us!,
    rtt_p99_paced_load_vs_idle: t.pacedP99Us! / t.idleP99Us!,
    throughput_single_vs_bastion: single(b),
    throughput_8conn_vs_bastion: t.parallelBps! / b.parallelBps!,
    throughput_single_vs_stunnel_chain: single(st),
    cpu_per_gb_vs_bastion: t.cpuSecondsPerGB! / b.cpuSecondsPerGB!,
    rtt_p50_added_vs_bastion: (t.idleP50Us! - d.idleP50Us!) / (b.idleP50Us! - d.idleP50Us!),
    rtt_p99_load_vs_ssh_load: t.loadP99Us! / s.loadP99Us!,
    rss_per_conn_kib_10k: largestIdle ? Math.max(...Object.values(largestIdle.rssPerConnKiB)) : Number.NaN,
    conns_10k_ok: largestIdle?.ok ?? 0,
    ...(streamOpen && {
      stream_open_p50_ms: streamOpen.withoutPodP50Ms,
      stream_open_vs_ssh: streamOpen.withoutPodP50Ms / streamOpen.sshOpenP50Ms,
    }),
  };
}

const fmt = (v: number | undefined, digits: number) => (v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits));

export function markdown(
  m: Record<string, Record<string, number>>,
  idleRuns: Record<string, IdleRun[]>,
  summary: Summary,
  notes: string[],
  streamOpen?: StreamOpenRun,
): string {
  const paths = pathOrder.filter((p) => m[p]);
  const lines = [
    `| figure | ${paths.map((p) => headers[p]).join(" | ")} | tunnel ÷ ssh -R | tunnel ÷ bastion | tunnel ÷ direct |`,
    `| --- | ${paths.map(() => "---:").join(" | ")} | ---: | ---: | ---: |`,
  ];
  for (const f of figures) {
    const v = (p: string) => m[p]?.[f.key];
    const ratio = (a?: number, b?: number) => (a !== undefined && b ? fmt(a / b, 2) : "–");
    lines.push(
      `| ${f.label} | ${paths.map((p) => fmt(v(p) === undefined ? undefined : f.scale(v(p)!), f.digits)).join(" | ")} | ${ratio(v("tunnel"), v("ssh-default"))} | ${ratio(v("tunnel"), v("bastion"))} | ${ratio(v("tunnel"), v("direct"))} |`,
    );
  }
  lines.push(
    "",
    "| idle connections | path | worked | open in (s) | RSS per connection (KiB) |",
    "| ---: | --- | ---: | ---: | --- |",
  );
  for (const [path, runs] of Object.entries(idleRuns)) {
    for (const r of runs) {
      const per = Object.entries(r.rssPerConnKiB)
        .map(([k, v]) => `${k} ${fmt(v, 1)}`)
        .join(", ");
      lines.push(`| ${r.attempted} | ${headers[path] ?? path} | ${r.ok} | ${r.openSeconds.toFixed(1)} | ${per} |`);
    }
  }
  if (streamOpen) {
    const so = streamOpen;
    lines.push(
      "",
      `| DeviceStream created → first byte, ${so.opens} opens (ms) | p50 | p99 |`,
      "| --- | ---: | ---: |",
      `| \`kubectl apply\` → sshd's banner through the stream | ${so.totalP50Ms} | ${so.totalP99Ms} |`,
      `| the same without the relay Pod's start | ${so.withoutPodP50Ms} | ${so.withoutPodP99Ms} |`,
      `| fresh \`ssh -N -R\` started → sshd's banner through the forward | ${so.sshOpenP50Ms} | ${so.sshOpenP99Ms} |`,
      `| without Pod start ÷ \`ssh -N -R\` | ${fmt(so.withoutPodP50Ms / so.sshOpenP50Ms, 2)} | ${fmt(so.withoutPodP99Ms / so.sshOpenP99Ms, 2)} |`,
    );
  }
  lines.push("", "| summary | value |", "| --- | ---: |");
  for (const [k, v] of Object.entries(summary)) lines.push(`| \`${k}\` | ${fmt(v, 3)} |`);
  return `${lines.join("\n")}\n\n${notes.join("\n")}\n`;
}
