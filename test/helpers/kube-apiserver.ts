// A real Kubernetes control plane for tests: etcd, kube-apiserver (RBAC enforced, x509 client-cert
// and static bearer-token authentication) and optionally kube-controller-manager for garbage collection and namespace
// deletion. Everything listens on loopback ports picked at start and lives in one temp folder.
// Flags follow envtest (sigs.k8s.io/controller-runtime pkg/internal/testing/controlplane).
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { forgetOnExit, type ManagedProcess, removeOnExit, startProcess } from "./child-process.ts";
import { freePort } from "./free-port.ts";
import { type ControlPlaneBinaries, controlPlaneBinaries } from "./k8s-binaries.ts";
import { type IssuedCert, newSigningKeyPair, TestCA } from "./test-ca.ts";
import { StopWaiting, waitFor } from "./wait.ts";

export interface TestCluster {
  /** Admin kubeconfig (client certificate in group system:masters) for kubectl and client-node. */
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  /** https://127.0.0.1:PORT */
  server: string;
  dataDir: string;
  /** Stops only kube-apiserver; etcd keeps the data. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port, over the same data. */
  startApiServer(): Promise<void>;
  /**
   * A KubeConfig authenticating as `user` in `groups` with its own client certificate: RBAC
   * applies to it exactly as to any real user (it has no rights until a binding grants them).
   * For a ServiceAccount use user "system:serviceaccount:<ns>:<name>".
   */
  impersonate(user: string, groups?: string[]): KubeConfig;
  /**
   * A KubeConfig with a bearer token, as exec and OIDC plugins yield: `userToken(user)` for one of
   * `tokenUsers` (the API server's static token file), or a ServiceAccount token from TokenRequest.
   */
  withToken(token: string, name?: string): KubeConfig;
  /** The static token of one of `tokenUsers`. */
  userToken(user: (typeof tokenUsers)[number]): string;
  /**
   * What a kubelet needs to serve the API server's port-forward and exec: a serving certificate
   * for 127.0.0.1 that the API server trusts (--kubelet-certificate-authority), and the CA and
   * name of the client certificate the API server presents (--kubelet-client-certificate).
   */
  kubelet: { serving: IssuedCert; clientCaPem: string; clientName: string };
  /** Stops every process and removes the temp folder. */
  stop(): Promise<void>;
}

export interface TestClusterOptions {
  /** Also run kube-controller-manager (garbage collector, namespace deletion, default ServiceAccounts). */
  controllerManager?: boolean;
  /** kube-controller-manager --controllers; defaults to the three above. */
  controllers?: string[];
  /** An audit policy (YAML): the API server then logs to `<dataDir>/logs/audit.log` (benchmarks count requests). */
  auditPolicy?: string;
}

/** Users that authenticate with a bearer token (--token-auth-file), as people behind OIDC do. */
export const tokenUsers = ["alice@example.com", "bob@example.com", "carol@example.com"] as const;

const defaultControllers = ["garbage-collector-controller", "namespace-controller", "serviceaccount-controller"];
const startTimeoutMs = 90_000; // 2 slow cores, cold page cache

function kubeconfigFor(server: string, caPem: string, user: string, cert: IssuedCert | { token: string }): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const credentials =
    "token" in cert
      ? { token: cert.token }
      : { "client-certificate-data": b64(cert.certPem), "client-key-data": b64(cert.keyPem) };
  // JSON is YAML: kubectl and client-node read it as a kubeconfig.
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server, "certificate-authority-data": b64(caPem) } }],
    users: [{ name: user, user: credentials }],
    contexts: [{ name: "test", context: { cluster: "test", user } }],
    "current-context": "test",
  });
}

/** GET url until it answers 200, the process dies, or time runs out. */
async function waitHealthy(proc: ManagedProcess, url: string, tls: { ca?: string; cert?: string; key?: string }) {
  let last = "no answer yet";
  try {
    await waitFor(
      `${proc.name} to be healthy`,
      async () => {
        if (!proc.running()) throw new StopWaiting("exited");
        try {
          const { status, body } = await get(url, tls);
          if (status === 200) return true;
          last = `${status} ${body.slice(0, 500)}`;
        } catch (err) {
          last = (err as Error).message;
        }
        return false;
      },
      startTimeoutMs,
      250,
    );
  } catch (err) {
    const why = err instanceof StopWaiting ? err.message : `not healthy after ${startTimeoutMs / 1000}s (${last})`;
    await proc.stop();
    throw new Error(`${proc.name} ${why}; last lines of ${proc.logPath}:\n${proc.tail()}`);
  }
}

function get(
  url: string,
  tls: { ca?: string; cert?: string; key?: string },
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  if (u.protocol === "http:") {
    return fetch(u, { signal: AbortSignal.timeout(5000) }).then(async (r) => ({
      status: r.status,
      body: await r.text(),
    }));
  }
  return new Promise((resolve, reject) => {
    // Without a CA (kube-controller-manager's self-signed health port) only liveness is checked.
    const req = request(u, { ...tls, rejectUnauthorized: tls.ca !== undefined, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

// DEVICESTREAMS_KEEP_TEST_CLUSTER=1 keeps the folder (logs, etcd data) for a post-mortem.
function removeDataDir(dataDir: string): void {
  forgetOnExit(dataDir);
  if (process.env.DEVICESTREAMS_KEEP_TEST_CLUSTER) console.error(`test cluster files kept in ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
}

export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  const bins = await controlPlaneBinaries();
  if (opts.controllerManager && !bins.kubeControllerManager) {
    throw new Error(`controllerManager requested but ${bins.dir} has no kube-controller-manager (see docs/testing.md)`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "devicestreams-kube-"));
  removeOnExit(dataDir);
  const procs: ManagedProcess[] = [];
  try {
    return await start(bins, dataDir, opts, procs);
  } catch (err) {
    for (const p of [...procs].reverse()) await p.stop();
    removeDataDir(dataDir);
    throw err;
  }
}

async function start(
  bins: ControlPlaneBinaries,
  dataDir: string,
  opts: TestClusterOptions,
  procs: ManagedProcess[],
): Promise<TestCluster> {
  const dir = (...parts: string[]) => {
    const d = join(dataDir, ...parts);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const pki = dir("pki");
  const logs = dir("logs");
  const file = (name: string, content: string) => {
    const path = join(pki, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };

  const ca = new TestCA();
  const serving = ca.issue({
    commonName: "kube-apiserver",
    dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    ipv4Addresses: ["127.0.0.1", "10.0.0.1"],
    usage: "server",
  });
  const admin = ca.issue({
    commonName: "devicestreams-test-admin",
    organizations: ["system:masters"],
    usage: "client",
  });
  const sa = newSigningKeyPair();
  const caFile = file("ca.crt", ca.certPem);
  const kubeletClientName = "kube-apiserver-kubelet-client";
  const kubeletClient = ca.issue({ commonName: kubeletClientName, usage: "client" });
  const kubeletServing = ca.issue({ commonName: "kubelet", ipv4Addresses: ["127.0.0.1"], usage: "server" });

  const [etcdPort, etcdPeerPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  const etcd = startProcess(
    "etcd",
    bins.etcd,
    [
      "--name=default",
      `--data-dir=${dir("etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      // Test data need not survive a power cut; fsync dominates etcd latency on small disks.
      "--unsafe-no-fsync=true",
    ],
    join(logs, "etcd.log"),
  );
  procs.push(etcd);
  await waitHealthy(etcd, `${etcdUrl}/health`, {});

  const server = `https://127.0.0.1:${apiPort}`;
  const tokens = new Map(tokenUsers.map((u) => [u, randomBytes(24).toString("hex")]));
  const tokenFile = file("tokens.csv", [...tokens].map(([u, t], i) => `${t},${u},token-user-${i}\n`).join(""));
  const apiArgs = [
    `--token-auth-file=${tokenFile}`,
    `--etcd-servers=${etcdUrl}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiPort}`,
    `--cert-dir=${pki}`,
    `--tls-cert-file=${file("apiserver.crt", serving.certPem)}`,
    `--tls-private-key-file=${file("apiserver.key", serving.keyPem)}`,
    `--client-ca-file=${caFile}`,
    "--authorization-mode=RBAC",
    "--service-cluster-ip-range=10.0.0.0/24",
    `--service-account-issuer=${server}`,
    `--service-account-key-file=${file("sa.pub", sa.publicKeyPem)}`,
    `--service-account-signing-key-file=${file("sa.key", sa.privateKeyPem)}`,
    "--allow-privileged=true",
    `--kubelet-certificate-authority=${caFile}`,
    `--kubelet-client-certificate=${file("kubelet-client.crt", kubeletClient.certPem)}`,
    `--kubelet-client-key=${file("kubelet-client.key", kubeletClient.keyPem)}`,
    "--kubelet-preferred-address-types=InternalIP",
    // As envtest: without it every Pod needs its namespace's "default" ServiceAccount to exist
    // first, which only kube-controller-manager creates.
    "--disable-admission-plugins=ServiceAccount",
    // Otherwise SIGTERM waits up to --request-timeout (60s) for watch connections to close;
    // this drains short requests, then gives the HTTP server 2s.
    "--shutdown-send-retry-after=true",
    ...(opts.auditPolicy
      ? [
          `--audit-policy-file=${file("audit-policy.yaml", opts.auditPolicy)}`,
          `--audit-log-path=${join(logs, "audit.log")}`,
          // 0 would mean the logger's default, 100 MB, and older lines would move to another file.
          "--audit-log-maxsize=100000",
        ]
      : []),
  ];
  const apiLog = join(logs, "kube-apiserver.log");
  const tls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
  let apiserver: ManagedProcess | undefined;
  const startApiServer = async () => {
    if (apiserver?.running()) return;
    apiserver = startProcess("kube-apiserver", bins.kubeApiserver, apiArgs, apiLog);
    procs.push(apiserver);
    // /readyz waits for etcd and the post-start hooks, RBAC's bootstrap roles among them.
    await waitHealthy(apiserver, `${server}/readyz`, tls);
  };
  await startApiServer();

  const kubeconfigPath = join(dataDir, "admin.kubeconfig");
  writeFileSync(kubeconfigPath, kubeconfigFor(server, ca.certPem, "admin", admin), { mode: 0o600 });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);

  if (opts.controllerManager && bins.kubeControllerManager) {
    // Its own name, but in system:masters so the garbage collector may delete any kind.
    const kcmCert = ca.issue({
      commonName: "system:kube-controller-manager",
      organizations: ["system:masters"],
      usage: "client",
    });
    const kcmConfig = join(dataDir, "kube-controller-manager.kubeconfig");
    writeFileSync(kcmConfig, kubeconfigFor(server, ca.certPem, "kcm", kcmCert), { mode: 0o600 });
    const kcmPort = await freePort();
    const kcm = startProcess(
      "kube-controller-manager",
      bins.kubeControllerManager,
      [
        `--kubeconfig=${kcmConfig}`,
        `--authentication-kubeconfig=${kcmConfig}`,
        `--authorization-kubeconfig=${kcmConfig}`,
        `--controllers=${(opts.controllers ?? defaultControllers).join(",")}`,
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        `--secure-port=${kcmPort}`,
        `--cert-dir=${dir("kube-controller-manager")}`,
      ],
      join(logs, "kube-controller-manager.log"),
    );
    procs.push(kcm);
    await waitHealthy(kcm, `https://127.0.0.1:${kcmPort}/healthz`, {});
  }

  let stopped = false;
  return {
    kubeconfigPath,
    kubeConfig,
    server,
    dataDir,
    startApiServer,
    async stopApiServer() {
      await apiserver?.stop();
    },
    kubelet: { serving: kubeletServing, clientCaPem: ca.certPem, clientName: kubeletClientName },
    impersonate(user: string, groups: string[] = []) {
      const cert = ca.issue({ commonName: user, organizations: groups, usage: "client" });
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigFor(server, ca.certPem, user, cert));
      return kc;
    },
    withToken(token: string, name = "token-user") {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigFor(server, ca.certPem, name, { token }));
      return kc;
    },
    userToken(user) {
      return tokens.get(user)!;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // Controllers first, etcd last: nothing logs errors about a backend that left early.
      for (const p of [...procs].reverse()) await p.stop();
      removeDataDir(dataDir);
    },
  };
}
