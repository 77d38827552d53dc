// Faults and bad input on a real node: the relay Pod deleted mid-session, the leading operator Pod
// killed, the node's containerd restarted; a relay image that does not exist, a relay too big for
// the node, an agent Pod that crashes in a loop. Each: what the user sees (the ssh session's end,
// the DeviceStream's conditions), and that everything else keeps working.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KubeClient } from "../../kube/client.ts";
import { runChecked } from "../helpers/command.ts";
import { pluginSsh } from "../helpers/plugin-ssh.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import type { System } from "../helpers/system.ts";
import { waitFor } from "../helpers/wait.ts";
import {
  applyStream,
  enrolAgent,
  installOperator,
  maintainerKubeconfig,
  opsNs,
  streamOf,
  waitCondition,
} from "./install.ts";
import { binDir, helm, kubectl, nodeCluster, root } from "./node-cluster.ts";

const ns = "faults";
const agentNs = "faults-agent";
const device = "edge-f";

describe("on a real node: faults and bad input", function () {
  this.timeout(600_000);
  let admin: KubeClient;
  let sshd: Sshd;
  let scratch: string;
  let path = "";
  /** The kubeconfig ssh-proxy runs with: a ServiceAccount's token, reviewed by the relay. */
  let maintainer = "";
  let transcript = "";

  before(async function () {
    this.timeout(1_800_000);
    admin = new KubeClient(await nodeCluster());
    sshd = await startSshd({ netns: "devicestreams-node" });
    scratch = mkdtempSync(join(tmpdir(), "ds-node-faults-"));
    const bin = join(scratch, "bin");
    mkdirSync(bin);
    symlinkSync(join(root, "cli/kubectl-devicestream.ts"), join(bin, "kubectl-devicestream"));
    symlinkSync(join(binDir, "kubectl"), join(bin, "kubectl"));
    path = `${bin}:${dirname(process.execPath)}:${process.env.PATH}`;
    await installOperator();
    await enrolAgent(admin, { ns, device, release: "edge-f", agentNs, services: { ssh: sshd.address }, scratch });
    maintainer = await maintainerKubeconfig(ns, scratch);
    await applyStream(ns, "ssh", { device, service: "ssh" });
    await waitFor(
      "stream ssh Connected",
      async () => (await streamOf(admin, ns, "ssh")).status?.phase === "Connected",
      180_000,
    );
  });
  after(async () => {
    admin?.close();
    await sshd?.stop();
    for (const [release, n] of [
      ["edge-f", agentNs],
      ["edge-crash", agentNs],
      ["devicestreams", opsNs],
    ]) {
      await helm(["uninstall", release!, "-n", n!, "--wait", "--timeout", "2m"]).catch(() => "");
    }
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });
  afterEach(async function () {
    if (this.currentTest?.state !== "failed") return;
    const dump = await kubectl(["get", "pods,events,devicestreams", "-A", "-o", "wide"]).catch((e) => String(e));
    console.error(`${dump}\n----- commands -----\n${transcript.slice(-10_000)}`);
  });

  const { ssh, sshWorks } = pluginSsh({
    sys: () => ({ userKubeconfig: maintainer, path }) as System,
    sshd: () => sshd,
    namespace: ns,
    transcript: (text) => {
      transcript += text;
    },
  });

  it("the relay Pod deleted mid-session: ssh ends with an error within a minute; a new relay carries ssh again", async () => {
    const session = ssh("ssh", "echo started; sleep 300", { timeoutMs: 240_000 });
    await waitFor("the session to start", () => transcript.includes("Authenticated to"), 60_000).catch(() => {});
    const t0 = Date.now();
    await kubectl(["delete", "pod", "-n", ns, "ssh-relay", "--wait=false"]);
    const r = await session;
    const ended = (Date.now() - t0) / 1000;
    assert.equal(r.stdout, "started\n");
    assert.notEqual(r.code, 0, "the session must end with an error, not as if the command succeeded");
    assert.ok(ended < 60, `the session ended ${ended}s after the relay Pod was deleted`);
    console.log(
      `      what the user saw (after ${ended.toFixed(1)}s): ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`,
    );
    await sshWorks("ssh", 180_000);
  });

  it("the leading operator Pod killed: the other replica takes over, and a new stream gets its relay", async () => {
    const lease = JSON.parse(await kubectl(["get", "lease", "-n", opsNs, "-o", "json"])) as {
      items: { spec: { holderIdentity?: string } }[];
    };
    const holder = lease.items.map((l) => l.spec.holderIdentity).find(Boolean);
    assert.ok(holder, "no operator holds the Lease");
    const pods = (await kubectl(["get", "pods", "-n", opsNs, "-o", "name"])).split("\n").filter(Boolean);
    const leader = pods.find((p) => holder.startsWith(p.replace("pod/", "")));
    assert.ok(leader, `no Pod matches the holder ${holder} (${pods.join(",")})`);
    await kubectl(["delete", "-n", opsNs, leader, "--grace-period=0", "--force"]);
    await applyStream(ns, "after-leader", { device, service: "ssh" });
    await waitFor(
      "stream after-leader Connected",
      async () => (await streamOf(admin, ns, "after-leader")).status?.phase === "Connected",
      180_000,
    );
    await sshWorks("after-leader", 60_000);
  });

  it("containerd restarted: running Pods keep serving, and new Pods start after", async () => {
    await runChecked("bash", [join(root, "scripts/node-cluster/restart.sh"), "containerd"], { timeoutMs: 60_000 });
    await sshWorks("ssh", 60_000);
    await applyStream(ns, "after-containerd", { device, service: "ssh" });
    await waitFor(
      "stream after-containerd Connected",
      async () => (await streamOf(admin, ns, "after-containerd")).status?.phase === "Connected",
      180_000,
    );
    await sshWorks("after-containerd", 60_000);
  });

  it("a relay image that does not exist and a relay too big for the node: RelayReady says why; other streams work", async () => {
    await installOperator(
      ["operator.relay.image=ghcr.io/devicestreams/no-such-image:0", "operator.relay.maxCpu=64"],
      "upgrade",
    );
    await applyStream(ns, "bad-image", { device, service: "ssh" });
    await applyStream(ns, "too-big", { device, service: "ssh", relay: { resources: { requests: { cpu: "32" } } } });
    const image = await waitCondition(admin, ns, "bad-image", "RelayReady", (c) =>
      /ErrImagePull|ImagePullBackOff/.test(c.message),
    );
    assert.equal(image.reason, "RelayNotReady");
    assert.match(image.message, /no-such-image/);
    const big = await waitCondition(admin, ns, "too-big", "RelayReady", (c) => /cannot be scheduled/.test(c.message));
    assert.equal(big.reason, "RelayNotReady");
    assert.match(big.message, /Insufficient cpu/);
    console.log(`      bad image: ${image.message.slice(0, 300)}\n      too big: ${big.message}`);
    await sshWorks("ssh", 60_000);
    await kubectl(["delete", "devicestream", "-n", ns, "bad-image", "too-big", "--wait=true"]);
    await installOperator(["operator.relay.image=", "operator.relay.maxCpu=1"], "upgrade");
  });

  it("an agent Pod crashing in a loop: the stream waits for its device and says so", async () => {
    await enrolAgent(admin, {
      ns,
      device: "edge-crash",
      release: "edge-crash",
      agentNs,
      services: { ssh: sshd.address },
      scratch,
      // Not on the node's network: the other agent holds its metrics port there.
      values: { extraArgs: ["--no-such-flag"], daemonset: { hostNetwork: false } },
      wait: false,
    });
    await waitFor(
      "the crashing agent's restarts",
      async () =>
        /CrashLoopBackOff|Error/.test(
          await kubectl(["get", "pods", "-n", agentNs, "-l", "app.kubernetes.io/instance=edge-crash"]),
        ),
      120_000,
    );
    await applyStream(ns, "to-crash", { device: "edge-crash", service: "ssh" });
    // Once its relay is ready, the stream can only wait for the device.
    const ready = await waitCondition(admin, ns, "to-crash", "Ready", (c) => c.reason === "DeviceOffline", 120_000);
    console.log(`      a stream to the crashing agent's device: ${ready.reason}: ${ready.message}`);
    assert.equal((await streamOf(admin, ns, "to-crash")).status?.phase, "WaitingForDevice");
    assert.match(ready.message, /the agent of Device "edge-crash" is not connected/);
    await sshWorks("ssh", 60_000);
  });
});
