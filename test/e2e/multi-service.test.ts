// The whole system on loopback with one stream of two services: `kubectl devicestream open
// --service ssh,web` (spec.services), the operator's relay and the hub's offer of both, an
// enrolled agent in front of a real sshd and an HTTP server, and `kubectl devicestream connect`
// with two -L ports and a SOCKS5 listener: ssh and curl through each, and what a stream that lacks
// a service says.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { commandLine, runCommand } from "../helpers/command.ts";
import { type HttpTarget, httpTarget } from "../helpers/http-target.ts";
import { type HubAgent, startHubAgent } from "../helpers/hub-agent.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { System } from "../helpers/system.ts";
import { waitFor } from "../helpers/wait.ts";

const ns = "e2e-multi";

describe("end to end: one stream, two services (ssh and HTTP), chosen per connection", function () {
  this.timeout(240_000);
  let sys: System;
  let sshd: Sshd;
  let web: HttpTarget;
  let edge: HubAgent | undefined;
  let connect: ChildProcess | undefined;
  let out = "";
  let transcript = "";
  let ports: number[] = [];

  before(async function () {
    this.timeout(180_000);
    [sys, sshd, web] = await Promise.all([System.start({ namespace: ns }), startSshd(), httpTarget()]);
    edge = await startHubAgent(sys, {
      namespace: ns,
      device: "edge-1",
      allow: [`ssh=${sshd.address}`, `web=${web.address}`],
    });
  });
  after(async () => {
    connect?.kill("SIGTERM");
    await edge?.stop();
    await sys?.stop();
    await Promise.all([sshd?.stop(), web?.close()]);
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(`----- agent -----\n${edge?.agent?.logs.slice(-10_000)}`);
      console.error(`----- connect -----\n${out.slice(-10_000)}\n----- commands -----\n${transcript.slice(-10_000)}`);
    }
  });

  const plugin = (args: string[]) =>
    sys.kubectl(["devicestream", args[0]!, ...args.slice(1)], { kubeconfig: sys.userKubeconfig }).then((r) => {
      transcript += `$ kubectl devicestream ${args.join(" ")}\n${r.stdout}${r.stderr}`;
      return r;
    });
  const run = async (cmd: string, args: string[]) => {
    transcript += `$ ${commandLine(cmd, args)}\n`;
    const r = await runCommand(cmd, args, { timeoutMs: 60_000 });
    transcript += r.stderr;
    return r;
  };

  it("kubectl devicestream open --service ssh,web: one stream for both, listed with both", async () => {
    const r = await plugin(["open", "edge-1", "--service", "ssh,web", "--name", "both", "-n", ns, "--timeout", "60s"]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /connected: the stream carries connections now/);
    assert.match(r.stdout, /kubectl devicestream connect both -n e2e-multi -L 10000:ssh -L 10001:web/);
    const ds = await sys.stream(ns, "both");
    assert.deepEqual(ds.spec.services, ["ssh", "web"]);
    assert.equal(ds.spec.service, undefined);
    const get = await sys.kubectl(["get", "devicestream", "-n", ns, "both"]);
    assert.match(get.stdout, /\nboth\s+edge-1\s+\["ssh","web"\]\s+Connected/);
    const list = await plugin(["list", "-n", ns]);
    assert.match(list.stdout, /\nboth\s+edge-1\s+ssh,web\s+Connected/);
  });

  it("connect -L …:ssh -L …:web --socks5: ssh and HTTP through each port, and through the SOCKS5 listener", async () => {
    const args = [
      "devicestream",
      "connect",
      "both",
      `--kubeconfig=${sys.userKubeconfig}`,
      "-n",
      ns,
      "-L",
      "127.0.0.1:0:ssh",
      "-L",
      "127.0.0.1:0:web",
      "--socks5",
      "127.0.0.1:0",
    ];
    transcript += `$ ${commandLine("kubectl", args)}\n`;
    connect = spawn("kubectl", args, { env: { ...process.env, PATH: sys.path }, stdio: ["ignore", "pipe", "pipe"] });
    // Kept for the next test too; after() stops it.
    for (const s of [connect.stdout!, connect.stderr!]) {
      s.on("data", (c: Buffer) => {
        out += c.toString();
      });
    }
    ports = await waitFor(
      "three listeners",
      () => {
        const found = [...out.matchAll(/^listening on 127\.0\.0\.1:(\d+) /gm)].map((m) => Number(m[1]));
        return found.length === 3 ? found : undefined;
      },
      60_000,
    );
    assert.match(out, /listening on 127\.0\.0\.1:\d+ \(service ssh\) → DeviceStream e2e-multi\/both/);
    assert.match(out, /listening on 127\.0\.0\.1:\d+ \(service web\) → /);
    assert.match(out, /listening on 127\.0\.0\.1:\d+ \(SOCKS5 and HTTP CONNECT; the host names the service\) → /);
    const [sshPort, webPort, socksPort] = ports as [number, number, number];

    const viaL = await run("ssh", [...sshd.sshArgs(), "-p", String(sshPort), `${sshd.user}@127.0.0.1`, "echo via -L"]);
    assert.equal(viaL.stdout, "via -L\n", viaL.stderr);
    const webL = await run("curl", ["-sS", `http://127.0.0.1:${webPort}/hello?name=port`]);
    assert.equal(webL.stdout, "hello port\n", webL.stderr);

    // SOCKS5: the host names the service; ssh through nc -X 5, as a ProxyCommand.
    const viaSocks = await run("ssh", [
      ...sshd.sshArgs(),
      "-o",
      `ProxyCommand=nc -X 5 -x 127.0.0.1:${socksPort} %h %p`,
      `${sshd.user}@ssh`,
      "echo via socks5",
    ]);
    assert.equal(viaSocks.stdout, "via socks5\n", viaSocks.stderr);
    const webSocks = await run("curl", [
      "-sS",
      "--socks5-hostname",
      `127.0.0.1:${socksPort}`,
      "http://web/hello?name=socks",
    ]);
    assert.equal(webSocks.stdout, "hello socks\n", webSocks.stderr);
    // The user's own Kubernetes token is reviewed per connection, whatever the service.
    await waitFor("the relay to record the user", async () => {
      const ds = await sys.stream(ns, "both");
      return ds.status?.lastConnection?.user === "alice@example.com";
    });
  });

  it("a service the stream lacks: refused before anything listens, and per connection through SOCKS5", async () => {
    const r = await plugin(["connect", "both", "-n", ns, "-L", "127.0.0.1:0:vnc"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /DS_SERVICE_NOT_IN_STREAM: DeviceStream "both" carries "ssh", "web", not "vnc"/);
    const socksPort = ports[2]!;
    const c = await run("curl", ["-sS", "--socks5-hostname", `127.0.0.1:${socksPort}`, "http://vnc/"]);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /Can't complete SOCKS5 connection to vnc\. \(2\)/, "SOCKS reply 2: not allowed by ruleset");
    await waitFor("the refusal's log line", () =>
      /local request refused .*request=vnc:80 reason=DS_SERVICE_NOT_IN_STREAM/.test(out),
    );
    // The others are unaffected.
    const again = await run("curl", [
      "-sS",
      "--socks5-hostname",
      `127.0.0.1:${socksPort}`,
      "http://web/hello?name=after",
    ]);
    assert.equal(again.stdout, "hello after\n");
  });

  it("ssh-proxy --service picks the service on a stream whose first is another", async () => {
    const ok = await plugin([
      "open",
      "edge-1",
      "--service",
      "web,ssh",
      "--name",
      "web-first",
      "-n",
      ns,
      "--timeout",
      "60s",
    ]);
    assert.equal(ok.code, 0, `${ok.stdout}${ok.stderr}`);
    const proxy = commandLine("kubectl", [
      "devicestream",
      "ssh-proxy",
      `--kubeconfig=${sys.userKubeconfig}`,
      "-n",
      ns,
      "--service",
      "ssh",
    ]);
    const args = [...sshd.sshArgs(), "-o", `ProxyCommand=${proxy} %h`, `${sshd.user}@web-first`, "echo picked"];
    transcript += `$ ${commandLine("ssh", args)}\n`;
    const r = await runCommand("ssh", args, { timeoutMs: 60_000, env: { ...process.env, PATH: sys.path } });
    transcript += r.stderr;
    assert.equal(r.stdout, "picked\n", r.stderr);
  });
});
