// Shared by the hub tests: an operator (in-process, under its ServiceAccount) with its hub on a
// free port, Devices, their enrolment Secrets, and agents run as real `devicestreams agent`
// processes enrolled through the real flow.
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Device } from "../../api/v1alpha1.ts";
import { collectionPath, core, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { devicestreams } from "../../proto/generated/devicestreams.js";
import { ComponentProcess } from "../helpers/component-process.ts";
import { readEnrollmentToken } from "../helpers/enrollment.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, type OperatorEnv, operatorNamespace } from "../operator/env.ts";

export { devicestreams };

export const decode = (s: Secret, key: string) => Buffer.from(s.data![key]!, "base64").toString("utf8");

export async function hubPort(op: RunningOperator): Promise<number> {
  return waitFor("the hub to serve", () => op.hubPort(), 30_000);
}

export async function caPem(env: OperatorEnv): Promise<{ certPem: string; keyPem: string }> {
  const s = await env.admin.get<Secret>(objectPath(core.secrets, operatorNamespace, "devicestreams-ca"));
  return { certPem: decode(s, "tls.crt"), keyPem: decode(s, "tls.key") };
}

export async function createDevice(
  env: OperatorEnv,
  ns: string,
  name: string,
  spec: Record<string, unknown> = {},
): Promise<Device> {
  return env.admin.create<Device>(
    collectionPath(devices, ns),
    { apiVersion: "devicestreams.io/v1alpha1", kind: "Device", metadata: { name }, spec },
    "tests",
  );
}

/** One counter of an operator's /metrics, 0 when absent. */
export async function metricValue(op: RunningOperator, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

export function getDevice(env: OperatorEnv, ns: string, name: string): Promise<Device> {
  return env.admin.get<Device>(objectPath(devices, ns, name));
}

/** The token the operator wrote where the Device's status.enrollment says (what an administrator hands the device). */
export async function enrollmentToken(env: OperatorEnv, ns: string, name: string, timeoutMs?: number): Promise<string> {
  return (await readEnrollmentToken(env.admin, ns, name, timeoutMs)).token;
}

export interface AgentSetup {
  dir: string;
  caFile: string;
  tokenFile: string;
}

export async function agentFiles(env: OperatorEnv, ns: string, name: string, dir?: string): Promise<AgentSetup> {
  const base = dir ?? mkdtempSync(join(env.cluster.dataDir, `agent-${name}-`));
  const caFile = join(base, "hub-ca.crt");
  const tokenFile = join(base, "token");
  writeFileSync(caFile, (await caPem(env)).certPem);
  writeFileSync(tokenFile, await enrollmentToken(env, ns, name).catch(() => ""));
  return { dir: base, caFile, tokenFile };
}

export function startAgent(
  port: number,
  ns: string,
  name: string,
  setup: AgentSetup,
  allow: string[],
  opts: { token?: boolean } = {},
): ComponentProcess {
  const args = [
    "agent",
    `--hub=127.0.0.1:${port}`,
    `--hub-ca=${setup.caFile}`,
    `--device=${ns}/${name}`,
    `--state-dir=${join(setup.dir, "state")}`,
    "--metrics-listen=127.0.0.1:0",
    "--heartbeat-interval=1s",
    ...allow.map((a) => `--allow=${a}`),
  ];
  if (opts.token !== false) args.push(`--enrollment-token-file=${setup.tokenFile}`);
  return new ComponentProcess(`agent-${name}`, args);
}
