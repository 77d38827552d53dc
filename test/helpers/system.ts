// The whole system on loopback for end-to-end tests: a real control plane (API server, etcd,
// controller-manager) with the CRDs and RBAC, operator replicas as real processes under the
// operator's ServiceAccount, the kubelet stand-in running relay Pods, a real sshd as the device's
// target, and a user identity with the plugin's Role for `kubectl devicestream`. On failure,
// dump() gives every component's log, `kubectl describe` and the events.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { loadAll } from "js-yaml";
import { relayName } from "../../api/constants.ts";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { nodeFlags } from "../../cli/node-flags.ts";
import { core, objectPath } from "../../kube/client.ts";
import type { KubeObject, Lease, Secret } from "../../kube/types.ts";
import { OperatorEnv, operatorNamespace } from "../operator/env.ts";
import { type ManagedProcess, startProcess, tailFile } from "./child-process.ts";
import { type CommandOptions, type CommandResult, runCommand } from "./command.ts";
import { freePort } from "./free-port.ts";
import { type KubeletStandIn, startKubeletStandIn } from "./kubelet-standin.ts";
import { startTcpBalancer, type TcpBalancer } from "./tcp-balancer.ts";
import { waitFor } from "./wait.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
export const cli = join(root, "cli/devicestreams.ts");
export const pluginUser = "alice@example.com";

export interface OperatorReplica {
  identity: string;
  metricsPort: number;
  hubPort?: number;
  process: ManagedProcess;
}

/** Whether this checkout's operator serves the hub (`--hub-listen`): tests that need it are skipped without. */
export const hubAvailable = readFileSync(join(root, "operator/options.ts"), "utf8").includes('"hub-listen"');

export class System {
  env!: OperatorEnv;
  kubelet!: KubeletStandIn;
  operators: OperatorReplica[] = [];
  /** Kubeconfig of the plugin's user (a bearer token): only the ClusterRole in client/rbac.yaml, bound in the namespace. */
  userKubeconfig!: string;
  /** PATH with kubectl-devicestream and Node.js 24 first, as a user's shell would have after installing. */
  path!: string;
  private extraLogs: Array<{ name: string; path: string }> = [];

  /** Every replica's hub behind one address, where relays ask about users. */
  hubService: TcpBalancer | undefined;
  /** Flags every operator replica gets on top of the test defaults (caps, ...). */
  operatorArgs: string[] = [];

  static async start(o: { replicas?: number; namespace: string; operatorArgs?: string[] }): Promise<System> {
    const s = new System();
    s.operatorArgs = o.operatorArgs ?? [];
    s.env = await OperatorEnv.start();
    const dataDir = s.env.cluster.dataDir;
    s.kubelet = await startKubeletStandIn({
      kubeConfig: s.env.cluster.kubeConfig,
      dataDir,
      tls: s.env.cluster.kubelet,
    });
    await s.env.namespace(o.namespace);
    // The plugin user's Role, bound in the test namespace.
    for (const doc of loadAll(readFileSync(join(root, "client/rbac.yaml"), "utf8"))) {
      if (doc) await s.env.apply({ ...(doc as KubeObject), metadata: { ...(doc as KubeObject).metadata } });
    }
    await s.env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "devicestreams-user", namespace: o.namespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "devicestreams-user" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: pluginUser }],
    } as KubeObject);
    // A bearer token, as OIDC and exec plugins yield: the relay has the operator review it.
    s.userKubeconfig = join(dataDir, "alice.kubeconfig");
    const alice = s.env.cluster.withToken(s.env.cluster.userToken(pluginUser), "alice");
    writeFileSync(s.userKubeconfig, alice.exportConfig(), { mode: 0o600 });
    const bin = join(dataDir, "bin");
    mkdirSync(bin);
    symlinkSync(join(root, "cli/kubectl-devicestream.ts"), join(bin, "kubectl-devicestream"));
    s.path = `${bin}:${dirname(process.execPath)}:${process.env.PATH}`;
    // Relays ask the hub about users through one address in front of every replica, as through
    // the hub Service: a relay made by a leader that later dies still gets its answers.
    if (hubAvailable) {
      s.hubService = await startTcpBalancer(() =>
        s.operators.filter((r) => r?.process.running() && r.hubPort).map((r) => r.hubPort!),
      );
    }
    try {
      for (let i = 0; i < (o.replicas ?? 1); i++) await s.startOperator(i);
      await s.waitForLeader();
    } catch (err) {
      // A before() hook's failure skips afterEach: show why here.
      console.error(await s.dump());
      await s.stop();
      throw err;
    }
    return s;
  }

  /** The plugin user's kubeconfig, loaded (to connect as the plugin does, from test code). */
  userKubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.userKubeconfig);
    return kc;
  }

  /** A kubeconfig with a client certificate (no bearer token): the plugin falls back to the source token. */
  writeKubeconfig(file: string, user: string, groups: string[] = ["system:authenticated"]): string {
    const path = join(this.env.cluster.dataDir, `${file}.kubeconfig`);
    writeFileSync(path, this.env.cluster.impersonate(user, groups).exportConfig(), { mode: 0o600 });
    return path;
  }

  async startOperator(i: number): Promise<OperatorReplica> {
    const metricsPort = await freePort();
    const hubPort = hubAvailable ? await freePort() : undefined;
    const identity = `replica-${i}`;
    const process_ = startProcess(
      `operator-${i}`,
      process.execPath,
      [
        ...nodeFlags,
        cli,
        "operator",
        `--kubeconfig=${this.env.operatorKubeconfigPath}`,
        `--namespace=${operatorNamespace}`,
        `--metrics-listen=127.0.0.1:${metricsPort}`,
        "--lease-duration=4s",
        "--renew-deadline=3s",
        "--retry-period=500ms",
        `--identity=${identity}`,
        "--relay-image=devicestreams:test",
        ...(hubPort ? [`--hub-listen=127.0.0.1:${hubPort}`] : []),
        ...(this.hubService ? [`--relay-access-review-address=127.0.0.1:${this.hubService.port}`] : []),
        ...this.operatorArgs,
      ],
      join(this.env.cluster.dataDir, "logs", `operator-${i}.log`),
    );
    const replica = { identity, metricsPort, hubPort, process: process_ };
    this.operators[i] = replica;
    return replica;
  }

  async leaderIdentity(): Promise<string | undefined> {
    const lease = await this.env.admin
      .get<Lease>(objectPath(core.leases, operatorNamespace, "devicestreams-operator"))
      .catch(() => undefined);
    return lease?.spec?.holderIdentity ?? undefined;
  }

  async waitForLeader(except?: string): Promise<OperatorReplica> {
    const id = await waitFor(
      "an operator replica to lead",
      async () => {
        const holder = await this.leaderIdentity();
        const replica = this.operators.find((r) => r?.identity === holder && r.process.running());
        return replica && holder !== except ? holder : undefined;
      },
      60_000,
    );
    return this.operators.find((r) => r.identity === id)!;
  }

  /** Real kubectl as the admin (or `kubeconfig`), with the plugin on PATH. */
  kubectl(args: string[], o: CommandOptions & { kubeconfig?: string } = {}): Promise<CommandResult> {
    // kubectl passes a plugin's flags on untouched and refuses flags before the plugin's name.
    const flag = `--kubeconfig=${o.kubeconfig ?? this.env.cluster.kubeconfigPath}`;
    const argv = args[0] === "devicestream" ? [args[0], args[1]!, flag, ...args.slice(2)] : [flag, ...args];
    return runCommand("kubectl", argv, {
      timeoutMs: 60_000,
      ...o,
      env: { ...process.env, PATH: this.path, ...o.env },
    });
  }

  async stream(ns: string, name: string): Promise<DeviceStream> {
    return this.env.getStream(ns, name);
  }

  /** Waits for the stream's relay to be ready; returns the stream, its Secret and the relay's address here. */
  async relayOf(ns: string, name: string, timeoutMs = 60_000) {
    const ds = await waitFor(
      `the relay of ${ns}/${name} to be ready`,
      async () => {
        const s = await this.stream(ns, name);
        const ok = s.status?.conditions?.some((c) => c.type === "RelayReady" && c.status === "True");
        return ok && s.status?.relay?.credentialsSecret ? s : undefined;
      },
      timeoutMs,
    );
    const secret = await this.env.admin.get<Secret>(objectPath(core.secrets, ns, ds.status!.relay!.credentialsSecret!));
    const value = (k: string) => Buffer.from(secret.data![k]!, "base64").toString("utf8");
    const pod = this.kubelet.pod(ns, relayName(name))!;
    return { stream: ds, value, pod, address: `${pod.ip}:8443`, serverName: ds.status!.relay!.tlsServerName! };
  }

  /** Keeps a log file to show in dump(). */
  addLog(name: string, path: string): void {
    this.extraLogs.push({ name, path });
  }

  async dump(): Promise<string> {
    const parts: string[] = [];
    for (const r of this.operators) if (r) parts.push(`----- ${r.process.name} -----\n${r.process.tail(150)}`);
    parts.push(this.kubelet?.logs() ?? "");
    for (const l of this.extraLogs) parts.push(`----- ${l.name} -----\n${tailFile(l.path, 80)}`);
    for (const args of [
      ["describe", "devicestreams,devices,pods", "-A"],
      ["get", "events", "-A", "--sort-by=.metadata.creationTimestamp"],
    ]) {
      const r = await this.kubectl(args, { timeoutMs: 20_000 }).catch((e: Error) => ({
        stdout: e.message,
        stderr: "",
      }));
      parts.push(`----- kubectl ${args.join(" ")} -----\n${r.stdout}${r.stderr}`);
    }
    return parts.join("\n");
  }

  async stop(): Promise<void> {
    await Promise.all(this.operators.map((r) => r?.process.stop(5_000)));
    await this.kubelet?.stop();
    await this.hubService?.close();
    await this.env?.stop();
  }
}
