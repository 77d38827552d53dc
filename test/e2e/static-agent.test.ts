// The whole system on loopback with a statically configured agent (given the stream's destination
// token, as a sidecar deployed per stream would be): `kubectl apply` of a DeviceStream, the
// operator (two replicas, real processes) makes the relay, the kubelet stand-in runs it, and ssh
// reaches a real sshd through `kubectl devicestream ssh-proxy`. Then the failures: the relay Pod
// deleted, the leading operator killed, the stream deleted under an open session.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { type as osType } from "node:os";
import { join } from "node:path";
import { relayName } from "../../api/constants.ts";
import { core, objectPath } from "../../kube/client.ts";
import type { KubeObject, Pod } from "../../kube/types.ts";
import { type ManagedProcess, startProcess } from "../helpers/child-process.ts";
import { pluginSsh } from "../helpers/plugin-ssh.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { cli, System } from "../helpers/system.ts";
import { sha256 } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const ns = "e2e-static";

describe("end to end: kubectl apply, relay Pod, static agent, ssh through kubectl devicestream", function () {
  this.timeout(240_000);
  let sys: System;
  let sshd: Sshd;
  let agent: ManagedProcess;
  let extra = "";
  let secretReader = "";

  before(async function () {
    this.timeout(180_000);
    // Static agents serve clusters without the hub: only there does the device side keep the
    // destination token (the weaker mode, docs/trust.md); with the hub it shows its certificate.
    [sys, sshd] = await Promise.all([
      System.start({ replicas: 2, namespace: ns, operatorArgs: ["--hub-listen="] }),
      startSshd(),
    ]);
    // Without the hub nobody reviews users' tokens either: the way in is the stream's source
    // token, for users who may read its Secret and present no token of their own (a client
    // certificate here), as the weaker mode says.
    secretReader = sys.writeKubeconfig("dana", "dana@example.com");
    for (const [name, roleRef] of [
      ["dana", { kind: "ClusterRole", name: "devicestreams-user" }],
      ["dana-secrets", { kind: "Role", name: "stream-secrets" }],
    ] as const) {
      await sys.env.apply({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name, namespace: ns },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", ...roleRef },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "dana@example.com" }],
      } as KubeObject);
    }
    await sys.env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "stream-secrets", namespace: ns },
      rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }],
    } as KubeObject);
  });
  after(async () => {
    await agent?.stop(2_000);
    await sys?.stop();
    await sshd?.stop();
  });
  beforeEach(() => {
    extra = "";
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(`----- sshd -----\n${sshd.logs().slice(-5_000)}\n----- ssh -----\n${extra.slice(-10_000)}`);
    }
  });

  const applyStream = async (name: string) => {
    const file = join(sys.env.cluster.dataDir, `${name}.yaml`);
    writeFileSync(
      file,
      [
        "apiVersion: devicestreams.io/v1alpha1",
        "kind: DeviceStream",
        "metadata:",
        `  name: ${name}`,
        `  namespace: ${ns}`,
        "spec:",
        "  device: edge-1",
        "  service: ssh",
        "",
      ].join("\n"),
    );
    const r = await sys.kubectl(["apply", "-f", file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`devicestream.devicestreams.io/${name} created`));
  };

  /** The agent a sidecar deployment would run for this one stream: its token and the relay's address. */
  const startStaticAgent = async (name: string) => {
    const relay = await sys.relayOf(ns, name);
    const dir = join(sys.env.cluster.dataDir, `agent-${name}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "token"), relay.value("destination-token"), { mode: 0o600 });
    writeFileSync(join(dir, "ca.crt"), relay.value("ca.crt"));
    const log = join(sys.env.cluster.dataDir, "logs", `agent-${name}.log`);
    sys.addLog(`agent ${name}`, log);
    const proc = startProcess(
      `agent ${name}`,
      process.execPath,
      [
        cli,
        "agent",
        `--relay=${relay.address}`,
        `--server-name=${relay.serverName}`,
        `--token-file=${join(dir, "token")}`,
        `--ca=${join(dir, "ca.crt")}`,
        `--allow=ssh=${sshd.address}`,
        "--metrics-listen=127.0.0.1:0",
        "--keepalive-time=2s",
        "--keepalive-timeout=2s",
      ],
      log,
    );
    return proc;
  };

  const { ssh, sshWorks } = pluginSsh({
    sys: () => sys,
    sshd: () => sshd,
    namespace: ns,
    transcript: (text) => {
      extra += text;
    },
    kubeconfig: () => secretReader,
  });

  it("kubectl apply, then ssh through kubectl devicestream ssh-proxy runs a command", async () => {
    await applyStream("web-ssh");
    agent = await startStaticAgent("web-ssh");
    await sshWorks("web-ssh");
    const r = await ssh("web-ssh", "uname -s; exit 3");
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, `${osType()}\n`);
    const list = await sys.kubectl(["devicestream", "list", "-n", ns], { kubeconfig: secretReader });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME\s+DEVICE\s+SERVICE\s+PHASE\s+REASON\s+LAST USER\s+LAST CONNECTION\s+AGE\n/);
    assert.match(list.stdout, /\nweb-ssh\s+edge-1\s+ssh\s+\w+/);
    // A source token is nobody in particular: without the hub nothing names who connected.
    assert.doesNotMatch(list.stdout, /@example\.com/);
  });

  it("a 64 MiB random file goes up and comes back with the same SHA-256", async () => {
    const local = join(sshd.dir, "e2e-upload.bin");
    const payload = randomBytes(64 * 1024 * 1024);
    writeFileSync(local, payload);
    const want = sha256(payload);
    const remote = join(sshd.dir, `e2e-copy-${randomBytes(4).toString("hex")}.bin`);
    const started = Date.now();
    const up = await ssh("web-ssh", `cat > ${remote} && sha256sum ${remote}`, { input: { file: local } });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout.split(/\s+/)[0], want, "sha256sum on the device disagrees with what was sent");
    const down = await ssh("web-ssh", `cat ${remote}`);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(down.stdoutBytes, payload.length);
    assert.equal(down.stdoutSha256, want);
    console.log(`      64 MiB up and down through ssh-proxy in ${Date.now() - started} ms`);
  });

  it("the relay Pod deleted: the operator makes a new one and the stream works again", async () => {
    const podPath = objectPath(core.pods, ns, relayName("web-ssh"));
    const before = await sys.env.admin.get<Pod>(podPath);
    const r = await sys.kubectl(["delete", "pod", "-n", ns, relayName("web-ssh"), "--wait=false"]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      "a new relay Pod, Ready",
      async () => {
        const pod = await sys.env.admin.get<Pod>(podPath);
        return (
          pod.metadata.uid !== before.metadata.uid &&
          pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        );
      },
      60_000,
    );
    // The same Secret, so the agent's token still holds; it finds the relay again by itself.
    await sshWorks("web-ssh", 45_000);
  });

  it("the relay process dies: restarted under restartPolicy OnFailure, the Pod shows it, the stream recovers", async () => {
    const running = sys.kubelet.pod(ns, relayName("web-ssh"))!;
    process.kill(running.pid!, "SIGKILL");
    const podPath = objectPath(core.pods, ns, relayName("web-ssh"));
    const pod = await waitFor(
      "the Pod to show the restart and be Ready again",
      async () => {
        const p = await sys.env.admin.get<Pod>(podPath);
        const c = p.status?.containerStatuses?.[0] as
          | { restartCount: number; ready: boolean; lastState?: { terminated?: { exitCode: number } } }
          | undefined;
        return c && c.restartCount >= 1 && c.ready ? { p, c } : undefined;
      },
      30_000,
    );
    assert.equal(pod.p.metadata.uid, running.uid, "the same Pod, restarted in place");
    assert.equal(pod.c.lastState?.terminated?.exitCode, 137);
    await sshWorks("web-ssh");
  });

  it("the leading operator killed: the other replica leads and streams keep working", async () => {
    const leader = await sys.waitForLeader();
    await leader.process.stop(0);
    const next = await sys.waitForLeader(leader.identity);
    assert.notEqual(next.identity, leader.identity);
    await sshWorks("web-ssh");
    // The new leader reconciles: a new stream gets its relay.
    await applyStream("after-failover");
    await sys.relayOf(ns, "after-failover");
    await sys.startOperator(sys.operators.indexOf(leader));
  });

  it("kubectl delete of the stream ends an open session promptly", async () => {
    // A session that would last a minute, holding the tunnel open; the marker says it runs.
    const marker = join(sshd.dir, `open-${randomBytes(4).toString("hex")}`);
    const session = ssh("web-ssh", `touch ${marker}; sleep 60; echo never`, { timeoutMs: 90_000 });
    await waitFor("the session to run on the device", () => existsSync(marker), 30_000);
    const started = Date.now();
    const d = await sys.kubectl(["delete", "devicestream", "-n", ns, "web-ssh", "--wait=false"]);
    assert.equal(d.code, 0, d.stderr);
    const r = await session;
    const took = Date.now() - started;
    assert.notEqual(r.code, 0, "the session must not end as if completed");
    assert.doesNotMatch(r.stdout, /never/);
    assert.ok(took < 10_000, `the session ended ${took} ms after kubectl delete`);
    console.log(`      session ended ${took} ms after kubectl delete`);
    await waitFor("the stream and its relay Pod to be gone", async () => {
      const gone = await sys.env.gone(core.pods, ns, relayName("web-ssh"));
      return gone && (await sys.kubectl(["get", "devicestream", "-n", ns, "web-ssh"])).code !== 0;
    });
  });
});
