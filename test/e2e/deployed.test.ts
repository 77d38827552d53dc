// Deployed the way a platform team runs it. The cloud side (API server, the operator and its hub,
// relay Pods, the gateway) is on the host; the device is in a network namespace whose one way out
// is the factory's HTTP proxy, which allows CONNECT to the gateway's port only; the user's laptop
// is in another namespace that reaches the API server and the gateway and nothing else. Over it:
// `kubectl apply` of a Device and a DeviceStream, enrolment through proxy and gateway, ssh through
// `kubectl devicestream ssh-proxy` by the gateway and by the API server's port-forward, a 64 MiB
// SHA-256 round trip, and the record of who connected.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { collectionPath, core, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import { commandLine, runCommand } from "../helpers/command.ts";
import { ComponentProcess } from "../helpers/component-process.ts";
import { readEnrollmentToken } from "../helpers/enrollment.ts";
import { type Gateway, routeRelayPod, startGateway } from "../helpers/gateway.ts";
import { type IsolatedNamespace, isolatedNamespace, netnsAvailable } from "../helpers/netns.ts";
import { metric } from "../helpers/robustness.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { pluginUser, System } from "../helpers/system.ts";
import { sha256 } from "../helpers/tcp-targets.ts";
import { startTinyproxy, type Tinyproxy } from "../helpers/tinyproxy.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, operatorNamespace, streams } from "../operator/env.ts";

const ns = "e2e-deployed";
const domain = "relay.factory.test";
const hubName = `hub.${domain}`;
const proxyPort = 3128;
const sshPort = 2222;
// Network namespaces need root (CI runs as root); elsewhere the test says so and is skipped.
const describeIfNetns = netnsAvailable ? describe : describe.skip;

describeIfNetns("end to end as deployed: device behind a proxy, user on a laptop, one gateway", function () {
  this.timeout(400_000);
  let sys: System;
  let sshd: Sshd;
  let gateway: Gateway;
  let proxy: Tinyproxy;
  let site: IsolatedNamespace;
  let laptop: IsolatedNamespace;
  let agent: ComponentProcess | undefined;
  let routesFile: string;
  let dir: string;
  let extra = "";

  before(async function () {
    this.timeout(300_000);
    routesFile = join(tmpdir(), `deployed-routes-${randomBytes(4).toString("hex")}.txt`);
    writeFileSync(routesFile, "# the hub's route is added once the operator serves it\n");
    [gateway, sshd, site, laptop] = await Promise.all([
      startGateway([`--routes-file=${routesFile}`]),
      startSshd(),
      isolatedNamespace("site"),
      isolatedNamespace("laptop"),
    ]);
    // The factory's proxy lets devices out to the gateway's port and nowhere else.
    proxy = await startTinyproxy({ connectPorts: [gateway.port] });
    sys = await System.start({
      replicas: 1,
      namespace: ns,
      operatorArgs: [
        `--gateway-relay-domain=${domain}`,
        `--gateway-address=127.0.0.1:${gateway.port}`,
        `--hub-dns-names=${hubName}`,
      ],
    });
    dir = sys.env.cluster.dataDir;
    appendFileSync(routesFile, `${hubName}=127.0.0.1:${sys.operators[0]!.hubPort}\n`);
    await site.bridge(proxyPort, `127.0.0.1:${proxy.port}`);
    await site.bridge(sshPort, sshd.address);
    const apiPort = new URL(sys.env.cluster.server).port;
    await laptop.bridge(Number(apiPort), `127.0.0.1:${apiPort}`);
    await laptop.bridge(gateway.port, gateway.address);
  });
  after(async () => {
    await agent?.stop();
    await sys?.stop();
    await gateway?.process.stop();
    await site?.remove();
    await laptop?.remove();
    await proxy?.stop();
    await sshd?.stop();
    if (routesFile) rmSync(routesFile, { force: true });
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(`----- agent -----\n${agent?.logs.slice(-15_000)}`);
      console.error(`----- gateway -----\n${gateway.process.logs.slice(-8_000)}`);
      console.error(
        `----- tinyproxy -----\n${proxy.logs().slice(-8_000)}\n----- commands -----\n${extra.slice(-15_000)}`,
      );
    }
  });

  /** ssh from the laptop through `kubectl devicestream ssh-proxy`, with more flags for it. */
  const ssh = async (stream: string, command: string, proxyFlags: string[] = [], input?: { file: string }) => {
    const proxyCommand = commandLine("kubectl", [
      "devicestream",
      "ssh-proxy",
      `--kubeconfig=${sys.userKubeconfig}`,
      "-n",
      ns,
      ...proxyFlags,
    ]);
    const args = [...sshd.sshArgs(), "-o", `ProxyCommand=${proxyCommand} %h`, `${sshd.user}@${stream}`, command];
    extra += `$ (laptop) ${commandLine("ssh", args)}\n`;
    const r = await runCommand("ip", ["netns", "exec", laptop.name, "ssh", ...args], {
      timeoutMs: 180_000,
      env: { ...process.env, PATH: sys.path },
      ...(input ? { input } : {}),
    });
    extra += r.stderr;
    return r;
  };
  const routed = async () =>
    (await metric(gateway.metricsPort, "devicestreams_gateway_connections_total", 'outcome="routed"')) ?? 0;
  const apply = async (file: string, yaml: string[], kubeconfig?: string) => {
    writeFileSync(join(dir, file), `${yaml.join("\n")}\n`);
    const r = await sys.kubectl(["apply", "-f", join(dir, file)], kubeconfig ? { kubeconfig } : {});
    extra += `$ kubectl apply -f ${file}\n${r.stdout}${r.stderr}`;
    assert.equal(r.code, 0, r.stderr);
  };

  it("each side reaches only what it must: the site only the proxy, the proxy only the gateway, the laptop no relay", async () => {
    const hubPort = sys.operators[0]!.hubPort!;
    assert.notEqual(await site.run(`exec 3<>/dev/tcp/127.0.0.1/${hubPort}`), 0, "the site reaches the hub directly");
    assert.equal(await site.run(`exec 3<>/dev/tcp/127.0.0.1/${proxyPort}`), 0, "the site does not reach its proxy");
    const auth = Buffer.from(`${proxy.user}:${proxy.password}`).toString("base64");
    const connectTo = (port: number) =>
      site.run(
        `exec 3<>/dev/tcp/127.0.0.1/${proxyPort}; printf 'CONNECT 127.0.0.1:${port} HTTP/1.1\\r\\nHost: 127.0.0.1:${port}\\r\\nProxy-Authorization: Basic ${auth}\\r\\n\\r\\n' >&3; head -1 <&3 | grep -q ' 200 '`,
      );
    assert.notEqual(await connectTo(hubPort), 0, "the proxy lets the site reach the hub past the gateway");
    assert.equal(await connectTo(gateway.port), 0, "the proxy does not let the site reach the gateway");
    assert.notEqual(await laptop.run(`exec 3<>/dev/tcp/127.0.0.1/${hubPort}`), 0, "the laptop reaches the hub");
    assert.equal(
      await laptop.run(`exec 3<>/dev/tcp/127.0.0.1/${gateway.port}`),
      0,
      "the laptop cannot reach the gateway",
    );
  });

  it("kubectl apply, enrolment through proxy and gateway, ssh and 64 MiB by both routes, and who connected", async () => {
    const earlierConnects = proxy.connects().length;
    await apply("device.yaml", [
      "apiVersion: devicestreams.io/v1alpha1",
      "kind: Device",
      "metadata:",
      "  name: press-7",
      `  namespace: ${ns}`,
      "spec: {}",
    ]);
    const ca = await sys.env.admin.get<Secret>(objectPath(core.secrets, operatorNamespace, "devicestreams-ca"));
    const agentDir = join(dir, "press-7");
    mkdirSync(agentDir);
    writeFileSync(join(agentDir, "hub-ca.crt"), Buffer.from(ca.data!["tls.crt"]!, "base64"));
    const { token } = await readEnrollmentToken(sys.env.admin, ns, "press-7");
    writeFileSync(join(agentDir, "token"), token, { mode: 0o600 });
    writeFileSync(join(agentDir, "proxy-auth"), `${proxy.user}:${proxy.password}\n`, { mode: 0o600 });
    agent = new ComponentProcess(
      "agent press-7",
      [
        "agent",
        `--hub=127.0.0.1:${gateway.port}`,
        `--hub-server-name=${hubName}`,
        `--hub-ca=${join(agentDir, "hub-ca.crt")}`,
        `--device=${ns}/press-7`,
        `--state-dir=${join(agentDir, "state")}`,
        `--enrollment-token-file=${join(agentDir, "token")}`,
        `--allow=ssh=127.0.0.1:${sshPort}`,
        "--metrics-listen=127.0.0.1:0",
        "--heartbeat-interval=1s",
        `--proxy=http://127.0.0.1:${proxyPort}`,
        `--proxy-auth-file=${join(agentDir, "proxy-auth")}`,
      ],
      {},
      site.wrap,
    );
    await waitFor(
      "the Device to show connected",
      async () => (await sys.env.admin.get<Device>(objectPath(devices, ns, "press-7"))).status?.connected,
      90_000,
    );

    const name = "press-ssh";
    const route = routeRelayPod(sys.env.admin, { namespace: ns, name, domain, routesFile });
    await apply(
      "stream.yaml",
      [
        "apiVersion: devicestreams.io/v1alpha1",
        "kind: DeviceStream",
        "metadata:",
        `  name: ${name}`,
        `  namespace: ${ns}`,
        "spec:",
        "  device: press-7",
        "  service: ssh",
      ],
      sys.userKubeconfig,
    );
    await route;
    const ds = await waitFor(
      "the stream to be connected",
      async () => {
        const s = await sys.env.admin.get<DeviceStream>(objectPath(streams, ns, name));
        return s.status?.phase === "Connected" ? s : undefined;
      },
      90_000,
    );
    assert.equal(ds.status?.relay?.externalEndpoint, `127.0.0.1:${gateway.port}`);
    // Everything the device did went through the proxy to the gateway: enrolment, session, relay.
    const connects = proxy.connects().slice(earlierConnects);
    assert.ok(connects.length >= 3, connects.join(", "));
    assert.ok(
      connects.every((c) => c === `127.0.0.1:${gateway.port}`),
      connects.join(", "),
    );

    const viaGateway = await routed();
    const hello = await ssh(name, "echo through-the-gateway");
    assert.equal(hello.stdout, "through-the-gateway\n", hello.stderr);
    assert.ok((await routed()) > viaGateway, "ssh-proxy did not come through the gateway");
    const forwarded = await ssh(name, "echo through-the-api-server", ["--via", "apiserver"]);
    assert.equal(forwarded.stdout, "through-the-api-server\n", forwarded.stderr);

    const local = join(dir, "deployed-upload.bin");
    const payload = randomBytes(64 * 1024 * 1024);
    writeFileSync(local, payload);
    const remote = join(sshd.dir, `deployed-${randomBytes(4).toString("hex")}.bin`);
    const up = await ssh(name, `cat > ${remote} && sha256sum ${remote}`, [], { file: local });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout.split(/\s+/)[0], sha256(payload), "sha256sum on the device disagrees with what was sent");
    const down = await ssh(name, `cat ${remote}`);
    assert.equal(down.stdoutBytes, payload.length);
    assert.equal(down.stdoutSha256, sha256(payload));

    // Who connected: the relay's log names the user of each connection, the stream the last one,
    // and an Event the first time this user connected.
    const relayLog = readFileSync(sys.kubelet.pod(ns, `${name}-relay`)!.logPath, "utf8");
    assert.match(relayLog, new RegExp(`connection opened connection=\\d+ user=${pluginUser.replace(/\./g, "\\.")}`));
    const last = await sys.env.admin.get<DeviceStream>(objectPath(streams, ns, name));
    assert.equal(last.status?.lastConnection?.user, pluginUser);
    const events = await sys.env.admin.list<{
      items: Array<{ reason?: string; note?: string; regarding?: { name?: string } }>;
    }>(collectionPath(core.events, ns));
    const connected = events.items.filter((e) => e.reason === "UserConnected" && e.regarding?.name === name);
    assert.equal(connected.length, 1, "one Event for the user, however many connections");
    assert.ok(connected[0]!.note!.includes(pluginUser), connected[0]!.note);
  });
});
