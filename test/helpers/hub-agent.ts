// An agent in hub mode enrolled through the real flow (the Device's enrolment token, the hub's CA,
// both operator replicas' hubs behind one address as a Service would put them), and the time from
// `kubectl apply` of a DeviceStream to the device side's first byte through it. Shared by the hub
// end-to-end test and the benchmark's stream-open scenario (bench/scenarios/stream-open.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { relayName } from "../../api/constants.ts";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { forwardLocalPort } from "../../client/local-port.ts";
import { streamAccess } from "../../client/stream-lookup.ts";
import { collectionPath, core, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import { createLogger, type Logger } from "../../runtime/log.ts";
import { devices, operatorNamespace, streams } from "../operator/env.ts";
import { ComponentProcess } from "./component-process.ts";
import { readEnrollmentToken } from "./enrollment.ts";
import type { System } from "./system.ts";
import { startTcpBalancer, type TcpBalancer } from "./tcp-balancer.ts";
import { waitFor } from "./wait.ts";

export const createDevice = (sys: System, namespace: string, name: string) =>
  sys.env.admin.create(
    collectionPath(devices, namespace),
    { apiVersion: "devicestreams.io/v1alpha1", kind: "Device", metadata: { name }, spec: {} },
    "tests",
  );

export interface HubAgent {
  /** The one address of every replica's hub. */
  hub: TcpBalancer;
  /** The agent running now; start() replaces it. */
  agent: ComponentProcess | undefined;
  /** `devicestreams agent` in hub mode; enrols with the token when `enrol`, else uses its stored certificate. */
  start(enrol: boolean): ComponentProcess;
  /** Stops the agent and the hub's address. */
  stop(): Promise<void>;
}

/**
 * Creates Device `namespace/device`, enrols an agent for it through the hub and waits until the
 * Device shows connected. `allow` is the agent's allow-list (`ssh=127.0.0.1:PORT`, ...).
 */
export async function startHubAgent(
  sys: System,
  o: {
    namespace: string;
    device: string;
    allow: string[];
    /** The hub's address as the agent dials it; the balancer's own by default. */
    hubAddress?: (balancerPort: number) => string;
    /** More agent flags, and a command prefix to run it through (a network namespace). */
    agentArgs?: string[];
    wrap?: string[];
  },
): Promise<HubAgent> {
  const decode = (s: Secret, k: string) => Buffer.from(s.data![k]!, "base64").toString("utf8");
  try {
    for (const r of sys.operators) {
      await waitFor(`${r.process.name} to serve the hub`, () => /hub serving/.test(r.process.tail(400)), 60_000);
    }
  } catch (err) {
    console.error(await sys.dump());
    throw err;
  }
  const hub = await startTcpBalancer(() => sys.operators.filter((r) => r.process.running()).map((r) => r.hubPort!));
  const dir = join(sys.env.cluster.dataDir, `agent-${o.device}`);
  const h: HubAgent = {
    hub,
    agent: undefined,
    start(enrol) {
      const args = [
        "agent",
        `--hub=${o.hubAddress?.(hub.port) ?? `127.0.0.1:${hub.port}`}`,
        `--hub-ca=${join(dir, "hub-ca.crt")}`,
        `--device=${o.namespace}/${o.device}`,
        `--state-dir=${join(dir, "state")}`,
        ...o.allow.map((a) => `--allow=${a}`),
        "--metrics-listen=127.0.0.1:0",
        "--heartbeat-interval=1s",
        "--keepalive-time=2s",
        "--keepalive-timeout=2s",
        ...(enrol ? [`--enrollment-token-file=${join(dir, "token")}`] : []),
        ...(o.agentArgs ?? []),
      ];
      h.agent = new ComponentProcess(`agent ${o.device}`, args, {}, o.wrap);
      return h.agent;
    },
    async stop() {
      await h.agent?.stop();
      await hub.close();
    },
  };
  try {
    await createDevice(sys, o.namespace, o.device);
    mkdirSync(dir);
    const ca = await sys.env.admin.get<Secret>(objectPath(core.secrets, operatorNamespace, "devicestreams-ca"));
    writeFileSync(join(dir, "hub-ca.crt"), decode(ca, "tls.crt"));
    const { token } = await readEnrollmentToken(sys.env.admin, o.namespace, o.device);
    writeFileSync(join(dir, "token"), token, { mode: 0o600 });
    h.start(true);
    await waitFor(
      `Device ${o.device} to show connected`,
      async () => (await sys.env.admin.get<Device>(objectPath(devices, o.namespace, o.device))).status?.connected,
      60_000,
    );
  } catch (err) {
    await h.stop();
    throw err;
  }
  return h;
}

/** Connects to 127.0.0.1:port; true once a byte comes back, false if the connection ends first. */
export function receivesByte(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("data", () => {
      s.destroy();
      resolve(true);
    });
    s.once("close", () => resolve(false));
    s.once("error", () => resolve(false));
  });
}

/**
 * Connects through the stream as the plugin does and resolves at the device side's first byte
 * (sshd's banner). `log` gets the local forward's events (a warning each time it closes early).
 */
export async function firstByte(
  admin: KubeClient,
  ns: string,
  name: string,
  deadline: number,
  log: Logger = createLogger("e2e"),
  /** Whose Kubernetes credentials to connect with; without, the source token (the stream must allow it). */
  user?: KubeConfig,
): Promise<void> {
  await waitFor(
    `a byte through ${name}`,
    async () => {
      const ds = await admin.get<DeviceStream>(objectPath(streams, ns, name));
      const ready = ds.status?.conditions?.some((c) => c.type === "RelayReady" && c.status === "True");
      if (!ready || !ds.status?.relay?.credentialsSecret) return false;
      const access = await streamAccess(admin, ds, { user });
      const forward = await forwardLocalPort(access.relay, access.credential, "127.0.0.1", 0, log);
      try {
        return await receivesByte(forward.port);
      } finally {
        await forward.close();
        access.relay.close();
      }
    },
    Math.max(0, deadline - Date.now()),
    20,
  );
}

export interface StreamOpen {
  /** From just before `kubectl apply` to the first byte (ms). */
  totalMs: number;
  /** The relay Pod's start: the kubelet stand-in's readyAt − seenAt (ms). */
  podStartMs: number;
  /** totalMs − podStartMs. */
  withoutPodMs: number;
}

/**
 * `kubectl apply` of DeviceStream `ns/name` for `device`'s `service`, timed to the first byte
 * through it (connected as the plugin does); then, not timed, deletes it and waits until it is
 * gone, so the next one starts from the same state.
 */
export async function timeStreamOpen(
  sys: System,
  admin: KubeClient,
  o: { namespace: string; name: string; device: string; service: string; timeoutMs?: number; log?: Logger },
): Promise<StreamOpen> {
  const { namespace: ns, name } = o;
  const file = join(sys.env.cluster.dataDir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: devicestreams.io/v1alpha1\nkind: DeviceStream\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: {device: ${o.device}, service: ${o.service}}\n`,
  );
  const t0 = Date.now();
  const a = await sys.kubectl(["apply", "-f", file]);
  if (a.code !== 0) throw new Error(`kubectl apply -f ${file} exited with ${a.code}: ${a.stderr}`);
  await firstByte(admin, ns, name, t0 + (o.timeoutMs ?? 60_000), o.log, sys.userKubeConfig());
  const totalMs = Date.now() - t0;
  const pod = sys.kubelet.pod(ns, relayName(name));
  const podStartMs = pod?.readyAt ? pod.readyAt - pod.seenAt : 0;
  await sys.kubectl(["delete", "devicestream", "-n", ns, name, "--wait=false"]);
  await waitFor(
    `${name} to be gone`,
    async () => (await sys.kubectl(["get", "devicestream", "-n", ns, name])).code !== 0,
  );
  return { totalMs, podStartMs, withoutPodMs: totalMs - podStartMs };
}
