// helm (built from Go modules by scripts/k8s-test-binaries.sh) and kubectl for the chart tests.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import { runChecked, runCommand } from "../helpers/command.ts";

export const root = join(import.meta.dirname, "../..");
export const cloudChart = join(root, "charts/devicestreams");
export const agentChart = join(root, "charts/devicestreams-agent");
/** `helm template` has no cluster to ask; render as for the version the test API server runs. */
export const kubeVersion = "v1.34.4";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
  [field: string]: any;
}

let helmPath: Promise<string> | undefined;

/** The helm binary; the script builds it once (minutes) and answers from its cache after. */
export function helm(): Promise<string> {
  helmPath ??= runChecked("bash", [join(root, "scripts/k8s-test-binaries.sh"), "helm"], { timeoutMs: 1_200_000 }).then(
    (r) => join(r.stdout.trimEnd().split("\n").at(-1)!, "helm"),
  );
  return helmPath;
}

const scratch = mkdtempSync(join(tmpdir(), "ds-charts-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
let files = 0;

/** A values file (JSON is YAML) for `-f`. */
export function valuesFile(values: object): string {
  const path = join(scratch, `values-${++files}.json`);
  writeFileSync(path, JSON.stringify(values));
  return path;
}

export async function runHelm(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runCommand(await helm(), args, { timeoutMs: 120_000 });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

export interface Rendered {
  text: string;
  objects: K8sObject[];
  find(kind: string, name?: string): K8sObject[];
  one(kind: string, name?: string): K8sObject;
}

export async function template(
  chart: string,
  values: object,
  o: { release?: string; namespace?: string; apiVersions?: string[] } = {},
): Promise<Rendered> {
  const args = ["template", o.release ?? "ds", chart, "-n", o.namespace ?? "devicestreams-system"];
  args.push("-f", valuesFile(values), "--kube-version", kubeVersion);
  for (const v of o.apiVersions ?? []) args.push("--api-versions", v);
  const r = await runHelm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(" ")} failed:\n${r.stderr}`);
  const objects = loadAll(r.stdout).filter((d): d is K8sObject => !!d && typeof d === "object");
  const find = (kind: string, name?: string) =>
    objects.filter((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  return {
    text: r.stdout,
    objects,
    find,
    one(kind, name) {
      const found = find(kind, name);
      if (found.length !== 1) throw new Error(`expected one ${kind} ${name ?? ""}, rendered ${found.length}`);
      return found[0]!;
    },
  };
}

/** The agent chart's required values (any PEM-shaped string stands in for the hub's CA here). */
export const agentBase = {
  hub: { address: "hub.example.com:8444", ca: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" },
  device: { namespace: "factory-1" },
  enrollment: { token: "enrol-token-123" },
  services: { ssh: "127.0.0.1:22" },
};

export async function kubectl(kubeconfig: string, args: string[], input?: string) {
  return runChecked("kubectl", ["--kubeconfig", kubeconfig, ...args], { input, timeoutMs: 120_000 });
}
