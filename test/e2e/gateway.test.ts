// The built-in gateway as the one way to every relay: the operator publishes the gateway's address
// and each stream's gateway name in status, so the hub's offer sends the agent there and
// `kubectl devicestream ssh-proxy` picks it (auto route: the external endpoint). ssh and a
// SHA-256-checked transfer go through it, both sessions counted by the gateway.
//
// The kubelet stand-in gives relay Pods 127.x addresses, not cluster DNS names, so the test routes
// the stream's gateway name with an exact route (--routes-file) to its Pod's address, where in a
// cluster the relay rule would name its Service.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { objectPath } from "../../kube/client.ts";
import { type Gateway, routeRelayPod, startGateway } from "../helpers/gateway.ts";
import { type HubAgent, startHubAgent } from "../helpers/hub-agent.ts";
import { pluginSsh } from "../helpers/plugin-ssh.ts";
import { metric } from "../helpers/robustness.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { hubAvailable, System } from "../helpers/system.ts";
import { sha256 } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";
import { streams } from "../operator/env.ts";

const ns = "e2e-gateway";
const domain = "relay.test";
const describeIfHub = hubAvailable ? describe : describe.skip;

describeIfHub("end to end: every relay through the gateway", function () {
  this.timeout(300_000);
  let sys: System;
  let sshd: Sshd;
  let gateway: Gateway;
  let edge: HubAgent | undefined;
  let routesFile: string;
  let extra = "";

  before(async function () {
    this.timeout(240_000);
    // The gateway starts first: its address is what the operator publishes.
    routesFile = join(tmpdir(), `gateway-routes-${randomBytes(4).toString("hex")}.txt`);
    writeFileSync(routesFile, "# filled in once the relay Pod has its address\n");
    [gateway, sshd] = await Promise.all([startGateway([`--routes-file=${routesFile}`]), startSshd()]);
    sys = await System.start({
      replicas: 1,
      namespace: ns,
      operatorArgs: [`--gateway-relay-domain=${domain}`, `--gateway-address=127.0.0.1:${gateway.port}`],
    });
    edge = await startHubAgent(sys, { namespace: ns, device: "edge-gw", allow: [`ssh=${sshd.address}`] });
  });
  after(async () => {
    await edge?.stop();
    await sys?.stop();
    await gateway?.process.stop();
    await sshd?.stop();
    if (routesFile) rmSync(routesFile, { force: true });
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(`----- agent -----\n${edge?.agent?.logs.slice(-15_000)}`);
      console.error(`----- gateway -----\n${gateway.process.logs.slice(-10_000)}\n----- commands -----\n${extra}`);
    }
  });

  const { ssh } = pluginSsh({
    sys: () => sys,
    sshd: () => sshd,
    namespace: ns,
    transcript: (text) => {
      extra += text;
    },
  });
  const routed = async () =>
    (await metric(gateway.metricsPort, "devicestreams_gateway_connections_total", 'outcome="routed"')) ?? 0;

  it("the agent's offer and ssh-proxy both name the gateway; ssh and a 16 MiB transfer go through it", async () => {
    const name = "gw-ssh";
    const serverName = `${name}.${ns}.${domain}`;
    // The route the relay rule would make in a cluster, written once the Pod has its address.
    const route = routeRelayPod(sys.env.admin, { namespace: ns, name, domain, routesFile });
    const open = await sys.kubectl(
      ["devicestream", "open", "edge-gw", "--service", "ssh", "--name", name, "-n", ns, "--timeout", "90s"],
      { kubeconfig: sys.userKubeconfig },
    );
    await route;
    extra += `$ kubectl devicestream open\n${open.stdout}${open.stderr}`;
    assert.equal(open.code, 0, open.stdout + open.stderr);

    const ds = await sys.env.admin.get<DeviceStream>(objectPath(streams, ns, name));
    assert.equal(ds.status?.relay?.externalEndpoint, `127.0.0.1:${gateway.port}`);
    assert.equal(ds.status?.relay?.tlsServerName, serverName);
    // The agent attaches through the gateway: its offer names the gateway and the stream's name.
    // A first offer can still name the Pod (a reconcile that read the stream before its gateway
    // annotation reached the cache); the hub offers again when the address changes, and the agent
    // moves, so wait for it rather than read the counter once.
    const afterAgent = await waitFor(
      "the agent's attach through the gateway",
      async () => {
        const n = await routed();
        return n >= 1 ? n : undefined;
      },
      30_000,
    );

    const hello = await ssh(name, "echo through-the-gateway");
    assert.equal(hello.stdout, "through-the-gateway\n", hello.stderr);
    const afterSsh = await routed();
    assert.ok(afterSsh > afterAgent, `ssh-proxy did not come through the gateway (routed ${afterAgent} → ${afterSsh})`);

    const local = join(sys.env.cluster.dataDir, "gateway-upload.bin");
    const payload = randomBytes(16 * 1024 * 1024);
    writeFileSync(local, payload);
    const remote = join(sshd.dir, `gateway-copy-${randomBytes(4).toString("hex")}.bin`);
    const up = await ssh(name, `cat > ${remote} && sha256sum ${remote}`, {
      input: { file: local },
      timeoutMs: 120_000,
    });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout.split(/\s+/)[0], sha256(payload), "sha256sum on the device disagrees with what was sent");
    const down = await ssh(name, `cat ${remote}`, { timeoutMs: 120_000 });
    assert.equal(down.stdoutBytes, payload.length);
    assert.equal(down.stdoutSha256, sha256(payload));
  });
});
