// The charts on a real node (kubelet, containerd, runc, CNI, kube-proxy, CoreDNS): `helm install`
// of both charts, `helm test`, the operator as a real Pod making the relay as a real Pod, the
// agent Pod enrolling through the hub Service by its DNS name, ssh and a 64 MiB SHA-256 round trip
// through `kubectl devicestream ssh-proxy`, every container under the charts' securityContext,
// then `helm upgrade` and `helm uninstall` leaving nothing behind.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KubeClient } from "../../kube/client.ts";
import { pluginSsh } from "../helpers/plugin-ssh.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import type { System } from "../helpers/system.ts";
import { waitFor } from "../helpers/wait.ts";
import { applyStream, enrolAgent, installOperator, maintainerKubeconfig, opsNs, streamOf } from "./install.ts";
import { binDir, helm, kubeconfigPath, kubectl, nodeCluster, root } from "./node-cluster.ts";

const edgeNs = "edge";
const agentNs = "edge-agent";
const device = "edge-1";

interface PodList {
  items: {
    metadata: { name: string; namespace: string; labels?: Record<string, string> };
    spec: {
      securityContext?: Record<string, unknown>;
      containers: { name: string; securityContext?: Record<string, unknown>; volumeMounts?: { mountPath: string }[] }[];
    };
    status: { phase: string; containerStatuses?: { name: string; ready: boolean; restartCount: number }[] };
  }[];
}

describe("on a real node: charts, operator and relay Pods, agent Pod, ssh", function () {
  this.timeout(600_000);
  // Each step builds on the one before.
  this.bail(true);
  let admin: KubeClient;
  let sshd: Sshd;
  let scratch: string;
  let transcript = "";

  before(async function () {
    this.timeout(1_800_000);
    admin = new KubeClient(await nodeCluster());
    // The device's sshd on the node's own loopback: the agent (hostNetwork) reaches it as 127.0.0.1.
    sshd = await startSshd({ netns: "devicestreams-node" });
    scratch = mkdtempSync(join(tmpdir(), "ds-node-"));
    const bin = join(scratch, "bin");
    mkdirSync(bin);
    symlinkSync(join(root, "cli/kubectl-devicestream.ts"), join(bin, "kubectl-devicestream"));
    symlinkSync(join(binDir, "kubectl"), join(bin, "kubectl"));
    path = `${bin}:${dirname(process.execPath)}:${process.env.PATH}`;
  });
  after(async () => {
    admin?.close();
    await sshd?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });
  afterEach(async function () {
    if (this.currentTest?.state !== "failed") return;
    const dump = await kubectl(["get", "pods,svc,events", "-A", "-o", "wide"]).catch((e) => String(e));
    const describe = await kubectl(["describe", "pods", "-A"]).catch((e) => String(e));
    console.error(`${dump}\n${describe.slice(-20_000)}\n----- commands -----\n${transcript.slice(-10_000)}`);
    console.error(`----- sshd -----\n${sshd?.logs().slice(-3_000)}`);
  });

  let path = "";
  /** The kubeconfig ssh-proxy runs with: a ServiceAccount's token, reviewed by the relay. */
  let maintainer = "";
  const { ssh, sshWorks } = pluginSsh({
    sys: () => ({ userKubeconfig: maintainer, path }) as System,
    sshd: () => sshd,
    namespace: edgeNs,
    transcript: (text) => {
      transcript += text;
    },
  });
  const pods = async (ns: string, selector?: string): Promise<PodList["items"]> =>
    (
      JSON.parse(
        await kubectl(["get", "pods", "-n", ns, "-o", "json", ...(selector ? ["-l", selector] : [])]),
      ) as PodList
    ).items;

  it("helm install of the operator chart rolls out on the node, and helm test passes", async () => {
    await installOperator();
    const out = await helm(["test", "devicestreams", "-n", opsNs, "--timeout", "3m"]);
    assert.match(out, /Phase:\s+Succeeded/);
    const operators = await pods(opsNs, "app.kubernetes.io/component=operator");
    assert.equal(operators.length, 2);
    for (const p of operators)
      assert.ok(
        p.status.containerStatuses?.every((c) => c.ready),
        p.metadata.name,
      );
  });

  it("the agent chart's Pod enrols through the hub Service's DNS name, and the Device shows connected", async () => {
    await enrolAgent(admin, { ns: edgeNs, device, release: "edge", agentNs, services: { ssh: sshd.address }, scratch });
  });

  it("a DeviceStream gets a relay Pod from the operator Pod; ssh and 64 MiB round trip through ssh-proxy", async () => {
    maintainer = await maintainerKubeconfig(edgeNs, scratch);
    await applyStream(edgeNs, "ssh", { device, service: "ssh" });
    await waitFor(
      "DeviceStream ssh to be Connected",
      async () => (await streamOf(admin, edgeNs, "ssh")).status?.phase === "Connected",
      180_000,
    );
    const relays = await pods(edgeNs);
    assert.equal(relays.length, 1, relays.map((p) => p.metadata.name).join(","));
    await sshWorks("ssh", 60_000);

    const file = join(scratch, "64MiB");
    const data = randomBytes(64 * 1024 * 1024);
    writeFileSync(file, data);
    const sent = createHash("sha256").update(data).digest("hex");
    const r = await ssh("ssh", "cat", { input: { file }, timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdoutBytes, data.length);
    assert.equal(r.stdoutSha256, sent);
  });

  it("every container runs as the charts set it: non-root, read-only root, no privilege escalation, no capabilities", async () => {
    const all = [...(await pods(opsNs)), ...(await pods(edgeNs)), ...(await pods(agentNs))].filter(
      (p) => p.status.phase === "Running",
    );
    assert.ok(all.length >= 4, `${all.length} running Pods`);
    for (const p of all) {
      for (const c of p.spec.containers) {
        const sc = { ...p.spec.securityContext, ...c.securityContext } as Record<string, unknown>;
        const where = `${p.metadata.namespace}/${p.metadata.name}/${c.name}`;
        assert.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
        assert.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
        assert.deepEqual((sc.capabilities as { drop?: string[] })?.drop, ["ALL"], `${where}: capabilities`);
        // What the process really is, asked inside the running container.
        const probe =
          "const fs=require('fs');let ro='';try{fs.writeFileSync('/app/x','x')}catch(e){ro=e.code}" +
          "const cap=fs.readFileSync('/proc/self/status','utf8').match(/CapEff:\\s*(\\w+)/)[1];" +
          "const nnp=fs.readFileSync('/proc/self/status','utf8').match(/NoNewPrivs:\\s*(\\d)/)[1];" +
          "let tmp='ok';try{fs.writeFileSync('/tmp/probe','ok')}catch(e){tmp=e.code}" +
          "console.log(JSON.stringify({uid:process.getuid(),ro,cap,nnp,tmp}))";
        const out = JSON.parse(
          await kubectl(["exec", "-n", p.metadata.namespace, p.metadata.name, "-c", c.name, "--", "node", "-e", probe]),
        );
        // /tmp is writable where the Pod mounts an emptyDir there (HOME=/tmp), read-only elsewhere.
        const tmp = c.volumeMounts?.some((m) => m.mountPath === "/tmp") ? "ok" : "EROFS";
        assert.deepEqual(out, { uid: 65532, ro: "EROFS", cap: "0000000000000000", nnp: "1", tmp }, where);
      }
    }
  });

  it("helm upgrade rolls the operator with the stream still working; helm uninstall leaves nothing behind", async () => {
    await installOperator(["operator.logLevel=debug"], "upgrade");
    await sshWorks("ssh", 120_000);

    await kubectl(["delete", "devicestream", "-n", edgeNs, "ssh", "--wait=true"]);
    await helm(["uninstall", "edge", "-n", agentNs, "--wait", "--timeout", "2m"]);
    await helm(["uninstall", "devicestreams", "-n", opsNs, "--wait", "--timeout", "2m"]);
    await waitFor(
      "no Pods left in the operator's, the stream's and the agent's namespaces",
      async () => (await pods(opsNs)).length + (await pods(edgeNs)).length + (await pods(agentNs)).length === 0,
      120_000,
    );
    for (const ns of [opsNs, edgeNs, agentNs]) {
      const left = await kubectl([
        "get",
        "deploy,ds,svc,sa,role,rolebinding,configmap,secret,networkpolicy,pdb,lease",
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/managed-by=Helm",
        "-o",
        "name",
      ]);
      assert.equal(left.trim(), "", `left in ${ns}:\n${left}`);
    }
    const cluster = await kubectl(["get", "clusterrole,clusterrolebinding", "-o", "name"]);
    assert.doesNotMatch(cluster, /devicestreams-operator/, "the operator's ClusterRole(Binding) outlived the release");
    const relaySecrets = await kubectl(["get", "secret,svc", "-n", edgeNs, "-o", "name"]);
    assert.equal(relaySecrets.trim(), "", `the stream's relay objects outlived it:\n${relaySecrets}`);
    readFileSync(kubeconfigPath); // the node itself is still up for the next file
  });
});
