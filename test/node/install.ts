// The steps the real-node tests share: the operator chart installed, a Device with its agent Pod
// enrolled (agent chart, daemonset mode on the node's network, in front of the test's sshd), and
// DeviceStreams applied and watched.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { type KubeClient, objectPath } from "../../kube/client.ts";
import { readEnrollmentToken } from "../helpers/enrollment.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, streams } from "../operator/env.ts";
import { helm, kubeconfigPath, kubectl, root } from "./node-cluster.ts";

export const opsNs = "devicestreams-system";

/** `helm install` (or upgrade) of charts/devicestreams as release devicestreams, waiting for it. */
export async function installOperator(set: string[] = [], verb: "install" | "upgrade" = "install"): Promise<void> {
  await helm([
    verb,
    "devicestreams",
    join(root, "charts/devicestreams"),
    "-n",
    opsNs,
    ...(verb === "install" ? ["--create-namespace"] : []),
    ...set.flatMap((s) => ["--set", s]),
    "--wait",
    "--timeout",
    "5m",
  ]);
}

/**
 * Creates Device `ns/device` and installs the agent chart for it as release `release` in
 * namespace `agentNs`, allowing `services` (name: host:port on the node); waits until the Device
 * shows connected unless `wait` is false. `values` are merged over the chart values.
 */
export async function enrolAgent(
  admin: KubeClient,
  o: {
    ns: string;
    device: string;
    release: string;
    agentNs: string;
    services: Record<string, string>;
    scratch: string;
    values?: Record<string, unknown>;
    wait?: boolean;
  },
): Promise<void> {
  await kubectl(["create", "namespace", o.ns]).catch(() => "");
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "Device",
      metadata: { name: o.device, namespace: o.ns },
      spec: {},
    }),
  );
  const { token } = await readEnrollmentToken(admin, o.ns, o.device, 60_000);
  const ca = Buffer.from(
    JSON.parse(await kubectl(["get", "secret", "-n", opsNs, "devicestreams-ca", "-o", "json"])).data["tls.crt"],
    "base64",
  ).toString();
  const values = join(o.scratch, `${o.release}-values.json`);
  writeFileSync(
    values,
    JSON.stringify({
      mode: "daemonset",
      daemonset: { hostNetwork: true },
      device: { namespace: o.ns, name: o.device },
      hub: { address: `devicestreams-hub.${opsNs}.svc:8444`, ca },
      enrollment: { token },
      services: o.services,
      // Not the node's disk: down.sh must leave nothing behind.
      state: { type: "emptyDir" },
      ...o.values,
    }),
  );
  await helm([
    "install",
    o.release,
    join(root, "charts/devicestreams-agent"),
    "-n",
    o.agentNs,
    "--create-namespace",
    "-f",
    values,
    ...(o.wait === false ? [] : ["--wait", "--timeout", "3m"]),
  ]);
  if (o.wait === false) return;
  await waitFor(
    `Device ${o.device} to show connected`,
    async () => (await admin.get<Device>(objectPath(devices, o.ns, o.device))).status?.connected,
    120_000,
  );
}

export async function applyStream(ns: string, name: string, spec: Record<string, unknown>): Promise<void> {
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "DeviceStream",
      metadata: { name, namespace: ns },
      spec,
    }),
  );
}

export const streamOf = (admin: KubeClient, ns: string, name: string) =>
  admin.get<DeviceStream>(objectPath(streams, ns, name));

/** The stream's condition `type` once `check` holds for it (bounded). */
export async function waitCondition(
  admin: KubeClient,
  ns: string,
  name: string,
  type: string,
  check: (c: { status: string; reason: string; message: string }) => boolean,
  timeoutMs = 120_000,
): Promise<{ status: string; reason: string; message: string }> {
  type Found = { status: string; reason: string; message: string };
  let last = "none yet";
  try {
    return await waitFor<Found | undefined>(
      `DeviceStream ${ns}/${name} condition ${type}`,
      async () => {
        const c = (await streamOf(admin, ns, name)).status?.conditions?.find((x) => x.type === type) as
          | Found
          | undefined;
        last = c ? `${c.status} ${c.reason}: ${c.message}` : "none";
        return c && check(c) ? c : undefined;
      },
      timeoutMs,
      500,
    ).then((c) => c!);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last ${type}: ${last}`);
  }
}

/**
 * A maintainer as the plugin expects one: a ServiceAccount bound to `client/rbac.yaml`'s role in
 * `ns`, with a kubeconfig holding its token, so the relay has the operator review it (users with
 * client certificates, like the admin's kubeconfig, would need the stream's source token).
 */
export async function maintainerKubeconfig(ns: string, dir: string): Promise<string> {
  await kubectl(["apply", "-f", join(root, "client/rbac.yaml")]);
  await kubectl(["create", "serviceaccount", "maintainer", "-n", ns, "--dry-run=client", "-o", "yaml"]).then((y) =>
    kubectl(["apply", "-f", "-"], y),
  );
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "maintainer", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "devicestreams-user" },
      subjects: [{ kind: "ServiceAccount", name: "maintainer", namespace: ns }],
    }),
  );
  const token = (await kubectl(["create", "token", "maintainer", "-n", ns, "--duration=2h"])).trim();
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const cluster = kc.getCurrentCluster()!;
  const user = new KubeConfig();
  user.loadFromOptions({
    clusters: [cluster],
    users: [{ name: "maintainer", token }],
    contexts: [{ name: "maintainer", cluster: cluster.name, user: "maintainer", namespace: ns }],
    currentContext: "maintainer",
  });
  const path = join(dir, `maintainer-${ns}.kubeconfig`);
  writeFileSync(path, user.exportConfig(), { mode: 0o600 });
  return path;
}
