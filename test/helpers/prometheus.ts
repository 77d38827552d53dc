// A real Prometheus (Debian's /usr/bin/prometheus) for tests: scrapes what a test gives it, and
// answers PromQL over its HTTP API. Also turns the chart's PodMonitor into the scrape job
// prometheus-operator would generate from it, so relay Pods are discovered from the real API server
// and labelled by the chart's own relabelling. Debian builds Prometheus without Kubernetes service
// discovery, so podsDiscovery() serves the Pods it lists over http_sd with the same
// `__meta_kubernetes_pod_*` labels kubernetes_sd (role pod) gives them.
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump } from "js-yaml";
import { core, type KubeClient } from "../../kube/client.ts";
import type { KubeList, Pod } from "../../kube/types.ts";
import { type ManagedProcess, removeOnExit, startProcess } from "./child-process.ts";
import { freePort } from "./free-port.ts";
import { waitFor } from "./wait.ts";

export interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: Array<[number, string]>;
}

export interface Prometheus {
  url: string;
  process: ManagedProcess;
  /** Instant query; throws with Prometheus' error for invalid PromQL. */
  query(expr: string, time?: number): Promise<PromSeries[]>;
  queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<PromSeries[]>;
  /** Label sets of the series `match` selects (what Grafana's label_values() reads). */
  series(match: string): Promise<Array<Record<string, string>>>;
  api<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

const prometheusBinary = "/usr/bin/prometheus";

type Relabel = Record<string, unknown>;

interface PodMonitor {
  metadata: { name: string; namespace?: string };
  spec: {
    selector: { matchLabels?: Record<string, string> };
    namespaceSelector?: { any?: boolean; matchNames?: string[] };
    podMetricsEndpoints: Array<{ port: string; path?: string; relabelings?: Relabel[] }>;
  };
}

const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, "_");
const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

interface PodDetail {
  spec?: {
    containers?: Array<{ name: string; ports?: Array<{ name?: string; containerPort: number; protocol?: string }> }>;
  };
}

/** One target per container port of every Pod with an IP, labelled as kubernetes_sd's role pod does. */
export function podTargets(pods: Array<Pod & PodDetail>) {
  const groups: Array<{ targets: string[]; labels: Record<string, string> }> = [];
  for (const pod of pods) {
    const ip = pod.status?.podIP;
    if (!ip) continue;
    const meta: Record<string, string> = {
      __meta_kubernetes_namespace: pod.metadata.namespace!,
      __meta_kubernetes_pod_name: pod.metadata.name!,
      __meta_kubernetes_pod_ip: ip,
      __meta_kubernetes_pod_phase: pod.status?.phase ?? "",
      __meta_kubernetes_pod_uid: pod.metadata.uid ?? "",
    };
    for (const [k, v] of Object.entries(pod.metadata.labels ?? {})) {
      meta[`__meta_kubernetes_pod_label_${sanitize(k)}`] = v;
      meta[`__meta_kubernetes_pod_labelpresent_${sanitize(k)}`] = "true";
    }
    for (const [k, v] of Object.entries(pod.metadata.annotations ?? {})) {
      meta[`__meta_kubernetes_pod_annotation_${sanitize(k)}`] = v;
      meta[`__meta_kubernetes_pod_annotationpresent_${sanitize(k)}`] = "true";
    }
    for (const c of pod.spec?.containers ?? []) {
      for (const port of c.ports ?? []) {
        groups.push({
          targets: [`${ip}:${port.containerPort}`],
          labels: {
            ...meta,
            __meta_kubernetes_pod_container_name: c.name,
            __meta_kubernetes_pod_container_port_name: port.name ?? "",
            __meta_kubernetes_pod_container_port_number: String(port.containerPort),
            __meta_kubernetes_pod_container_port_protocol: port.protocol ?? "TCP",
          },
        });
      }
    }
  }
  return groups;
}

/** An http_sd endpoint listing every Pod the API server has, as podTargets() labels them. */
export async function podsDiscovery(client: KubeClient): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((_req, res) => {
    client
      .get<KubeList<Pod & PodDetail>>(`/api/v1/${core.pods.plural}`)
      .then((list) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(podTargets(list.items)));
      })
      .catch((err: Error) => {
        res.writeHead(500);
        res.end(err.message);
      });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/pods`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The scrape job prometheus-operator generates for endpoint 0 of a PodMonitor (its selector as keep
 * rules, the port by name, namespace/pod/container/job/endpoint target labels, then the PodMonitor's
 * own relabelings), discovering Pods from `discoveryUrl` (podsDiscovery()).
 */
export function podMonitorJob(pm: PodMonitor, discoveryUrl: string, interval = "1s"): Record<string, unknown> {
  const ep = pm.spec.podMetricsEndpoints[0]!;
  const job = `${pm.metadata.namespace ?? "default"}/${pm.metadata.name}`;
  const relabel: Relabel[] = [
    { source_labels: ["__meta_kubernetes_pod_phase"], regex: "(Failed|Succeeded)", action: "drop" },
    ...Object.entries(pm.spec.selector.matchLabels ?? {}).map(([k, v]) => ({
      source_labels: [
        `__meta_kubernetes_pod_label_${sanitize(k)}`,
        `__meta_kubernetes_pod_labelpresent_${sanitize(k)}`,
      ],
      regex: `(${v});true`,
      action: "keep",
    })),
    { source_labels: ["__meta_kubernetes_pod_container_port_name"], regex: ep.port, action: "keep" },
    { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
    { source_labels: ["__meta_kubernetes_pod_container_name"], target_label: "container" },
    { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
    { target_label: "job", replacement: job },
    { target_label: "endpoint", replacement: ep.port },
    ...(ep.relabelings ?? []).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [snake(k), v]))),
  ];
  if (!pm.spec.namespaceSelector?.any && pm.spec.namespaceSelector?.matchNames) {
    const names = pm.spec.namespaceSelector.matchNames.join("|");
    relabel.unshift({ source_labels: ["__meta_kubernetes_namespace"], regex: `(${names})`, action: "keep" });
  }
  return {
    job_name: `podMonitor/${job}/0`,
    scrape_interval: interval,
    metrics_path: ep.path ?? "/metrics",
    http_sd_configs: [{ url: discoveryUrl, refresh_interval: "1s" }],
    relabel_configs: relabel,
  };
}

export async function startPrometheus(o: {
  scrapeConfigs: Array<Record<string, unknown>>;
  ruleFiles?: string[];
  intervalSeconds?: number;
}): Promise<Prometheus> {
  if (!existsSync(prometheusBinary)) {
    throw new Error(`no ${prometheusBinary}: apt-get install prometheus (Debian's; .ci/run installs it)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "ds-prometheus-"));
  removeOnExit(dir);
  const interval = `${o.intervalSeconds ?? 1}s`;
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: o.ruleFiles ?? [],
    scrape_configs: o.scrapeConfigs,
  };
  writeFileSync(join(dir, "prometheus.yml"), dump(config));
  const port = await freePort();
  const proc = startProcess(
    "prometheus",
    prometheusBinary,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    join(dir, "prometheus.log"),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    "Prometheus to be ready",
    async () => {
      if (!proc.running()) throw new Error(`prometheus exited:\n${proc.tail(40)}`);
      return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok;
    },
    30_000,
  );
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`Prometheus ${path}: ${body.error}`);
    return body.data;
  };
  const q = (params: Record<string, string>) => new URLSearchParams(params).toString();
  return {
    url,
    process: proc,
    api,
    async query(expr, time) {
      const params: Record<string, string> = { query: expr };
      if (time !== undefined) params.time = String(time);
      return (await api<{ result: PromSeries[] }>(`/api/v1/query?${q(params)}`)).result;
    },
    async queryRange(expr, start, end, step) {
      const params = { query: expr, start: String(start), end: String(end), step: String(step) };
      return (await api<{ result: PromSeries[] }>(`/api/v1/query_range?${q(params)}`)).result;
    },
    series: (match) => api<Array<Record<string, string>>>(`/api/v1/series?${q({ "match[]": match })}`),
    stop: () => proc.stop(5_000),
  };
}
