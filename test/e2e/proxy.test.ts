// A device whose only way out is an HTTP proxy: the agent runs in a network namespace of the
// test's own whose one bridge leads to a real tinyproxy that wants Basic credentials. Enrolment,
// offers, ssh and a 64 MiB round trip all go through it; a wrong password is named clearly.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { ComponentProcess } from "../helpers/component-process.ts";
import { type HubAgent, startHubAgent } from "../helpers/hub-agent.ts";
import { type IsolatedNamespace, isolatedNamespace, netnsAvailable } from "../helpers/netns.ts";
import { pluginSsh } from "../helpers/plugin-ssh.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { hubAvailable, System } from "../helpers/system.ts";
import { sha256 } from "../helpers/tcp-targets.ts";
import { startTinyproxy, type Tinyproxy } from "../helpers/tinyproxy.ts";
import { within } from "../helpers/wait.ts";

const ns = "e2e-proxy";
const proxyPort = 3128;
const sshPort = 2222;
const describeIfNetns = hubAvailable && netnsAvailable ? describe : describe.skip;

describeIfNetns("end to end: an agent whose only way out is an HTTP proxy", function () {
  this.timeout(300_000);
  let sys: System;
  let sshd: Sshd;
  let proxy: Tinyproxy;
  let netns: IsolatedNamespace;
  let edge: HubAgent | undefined;
  let dir: string;
  let extra = "";

  before(async function () {
    this.timeout(240_000);
    [sys, sshd, proxy, netns] = await Promise.all([
      System.start({ replicas: 1, namespace: ns }),
      startSshd(),
      startTinyproxy(),
      isolatedNamespace("proxy"),
    ]);
    dir = sys.env.cluster.dataDir;
    await netns.bridge(proxyPort, `127.0.0.1:${proxy.port}`);
    // The device's own sshd, as the agent sees it on its loopback.
    await netns.bridge(sshPort, sshd.address);
    writeFileSync(join(dir, "proxy-auth"), `${proxy.user}:${proxy.password}\n`, { mode: 0o600 });
    writeFileSync(join(dir, "proxy-auth-wrong"), `${proxy.user}:not-the-password\n`, { mode: 0o600 });
  });
  after(async () => {
    await edge?.stop();
    await sys?.stop();
    await netns?.remove();
    await proxy?.stop();
    await sshd?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(`----- agent -----\n${edge?.agent?.logs.slice(-15_000)}`);
      console.error(`----- tinyproxy -----\n${proxy.logs().slice(-10_000)}\n----- commands -----\n${extra}`);
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

  it("the namespace reaches nothing but the proxy", async () => {
    const hubPort = sys.operators[0]!.hubPort!;
    assert.notEqual(await netns.run(`exec 3<>/dev/tcp/127.0.0.1/${hubPort}`), 0, "the hub is reachable directly");
    assert.equal(await netns.run(`exec 3<>/dev/tcp/127.0.0.1/${proxyPort}`), 0, "the proxy is not reachable");
  });

  it("a wrong proxy password stops the agent with an error naming the proxy", async () => {
    const hubPort = sys.operators[0]!.hubPort!;
    const agent = new ComponentProcess(
      "agent wrong-proxy-password",
      [
        "agent",
        `--hub=127.0.0.1:${hubPort}`,
        `--hub-ca=${join(dir, "pki", "ca.crt")}`,
        `--device=${ns}/nobody`,
        `--state-dir=${join(dir, "wrong-state")}`,
        "--allow=ssh=127.0.0.1:22",
        "--metrics-listen=127.0.0.1:0",
        `--proxy=http://127.0.0.1:${proxyPort}`,
        `--proxy-auth-file=${join(dir, "proxy-auth-wrong")}`,
      ],
      {},
      netns.wrap,
    );
    stopAfterTest(agent);
    assert.equal(await within("the agent to exit", agent.wait(), 30_000), 1, agent.logs);
    assert.match(
      agent.logs,
      /DS_PROXY_AUTH: the HTTP proxy http:\/\/127\.0\.0\.1:3128 \(--proxy\) refused the credentials given \(40[17]/,
    );
    assert.doesNotMatch(agent.logs, /not-the-password/);
  });

  it("enrols, takes an offer and carries ssh and a 64 MiB round trip, all through the proxy", async () => {
    edge = await startHubAgent(sys, {
      namespace: ns,
      device: "edge-behind-proxy",
      allow: [`ssh=127.0.0.1:${sshPort}`],
      agentArgs: [`--proxy=http://127.0.0.1:${proxyPort}`, `--proxy-auth-file=${join(dir, "proxy-auth")}`],
      wrap: netns.wrap,
    });
    const hubConnects = proxy.connects().length;
    assert.ok(hubConnects >= 2, `enrolment and the session went through the proxy: ${proxy.connects().join(", ")}`);

    const open = await sys.kubectl(
      [
        "devicestream",
        "open",
        "edge-behind-proxy",
        "--service",
        "ssh",
        "--name",
        "via-proxy",
        "-n",
        ns,
        "--timeout",
        "90s",
      ],
      { kubeconfig: sys.userKubeconfig },
    );
    assert.equal(open.code, 0, open.stdout + open.stderr);
    // The agent dialled the relay through the proxy too (the relay Pod's address, port 8443).
    assert.ok(
      proxy.connects().some((c) => c.endsWith(":8443")),
      proxy.connects().join(", "),
    );

    const hello = await ssh("via-proxy", "echo through-the-proxy");
    assert.equal(hello.stdout, "through-the-proxy\n", hello.stderr);

    const local = join(dir, "proxy-upload.bin");
    const payload = randomBytes(64 * 1024 * 1024);
    writeFileSync(local, payload);
    const remote = join(sshd.dir, `proxy-copy-${randomBytes(4).toString("hex")}.bin`);
    const up = await ssh("via-proxy", `cat > ${remote} && sha256sum ${remote}`, {
      input: { file: local },
      timeoutMs: 180_000,
    });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout.split(/\s+/)[0], sha256(payload));
    const down = await ssh("via-proxy", `cat ${remote}`, { timeoutMs: 180_000 });
    assert.equal(down.stdoutBytes, payload.length);
    assert.equal(down.stdoutSha256, sha256(payload));
  });
});
