// The gateway on the data plane: a real relay, agent and client whose TLS goes through
// `devicestreams gateway` by server name, end to end (the gateway holds no key). Bad input at the
// gateway (unknown names, no ClientHello, not TLS, a 16 KiB name, floods of half-open
// connections) is closed with a counted reason and a log line, and the stream is not disturbed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { type StaticStream, writeStaticStream } from "../../cli/static-stream.ts";
import { clientHello, clientHelloMessage, records } from "../helpers/client-hello.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { type Agent, type Client, type Relay, startAgent, startClient, startRelay } from "../helpers/dataplane.ts";
import { freePort } from "../helpers/free-port.ts";
import { type Gateway, startGateway } from "../helpers/gateway.ts";
import { assertHealthy, HeldConnection, metric, waitForMetric } from "../helpers/robustness.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const name = "web.team-a.relay.test";

/** Resolves when the peer closes the socket (FIN or reset), with whether it was a reset. */
function closed(s: Socket): Promise<{ reset: boolean }> {
  return new Promise((resolve) => {
    let reset = false;
    s.on("error", () => {
      reset = true;
    });
    s.on("data", () => {});
    s.once("close", () => resolve({ reset }));
  });
}

function rawConnect(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: "127.0.0.1", localAddress }, () => resolve(s));
    s.once("error", reject);
  });
}

/** A TLS handshake through the gateway; resolves with the peer certificate's names or the error. */
function handshake(port: number, servername: string, ca: string): Promise<{ names?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername, ca, ALPNProtocols: ["h2"] });
    s.once("secureConnect", () => {
      resolve({ names: s.getPeerCertificate().subjectaltname });
      s.destroy();
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
}

describe("data plane through the gateway", function () {
  this.timeout(120_000);
  let dir: string;
  let echo: TcpTarget;
  let stream: StaticStream;
  let relay: Relay;
  let gateway: Gateway;
  let agent: Agent;
  let client: Client;
  let routesFile: string;
  const started: ComponentProcess[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ds-gateway-"));
    echo = await echoServer();
    // The relay's certificate lists the gateway name, as the operator will issue it with a relay domain.
    stream = await writeStaticStream(dir, { service: "echo", dnsNames: ["localhost", name] });
    relay = await startRelay(stream);
    started.push(relay.process);
    routesFile = join(dir, "routes.txt");
    writeFileSync(routesFile, `# exact routes\nclosed.test=127.0.0.1:${await freePort()}\n`);
    gateway = await startGateway([
      "--relay-domain=relay.test",
      `--relay-upstream=${relay.address}`,
      `--routes-file=${routesFile}`,
      "--handshake-timeout=1s",
      "--max-connections-per-source=100",
    ]);
    started.push(gateway.process);
    const viaGateway = ["--server-name", name];
    agent = await startAgent(stream, gateway.address, [`echo=${echo.address}`], viaGateway);
    started.push(agent.process);
    client = await startClient(stream, gateway.address, viaGateway);
    started.push(client.process);
  });
  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
    await echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") {
      for (const p of started) console.error(`----- ${p.name} -----\n${p.logs.slice(-8_000)}`);
    }
  });

  const refusals = (reason: string) =>
    metric(gateway.metricsPort, "devicestreams_gateway_connections_total", `reason="${reason}"`);

  it("carries the stream end to end: hashed bytes both ways, the relay's own certificate", async () => {
    await assertHealthy(client.port, 4 * 1024 * 1024);
    // The agent's and the client's sessions: both routed.
    const routed = await metric(gateway.metricsPort, "devicestreams_gateway_connections_total", 'outcome="routed"');
    assert.ok((routed ?? 0) >= 2, `routed ${routed}`);
    // The certificate a TLS client sees through the gateway is the relay's, checked against the CA and the name.
    const ok = await handshake(gateway.port, name, stream.caCert && stream.ca.certPem);
    assert.equal(ok.error, undefined);
    assert.match(ok.names ?? "", /DNS:web\.team-a\.relay\.test/);
    // A name the rule routes to the same relay but its certificate does not list: the client refuses
    // the relay (TLS is not terminated at the gateway, so the gateway cannot hide the mismatch).
    const other = await handshake(gateway.port, "other.team-a.relay.test", stream.ca.certPem);
    assert.equal(other.error, "ERR_TLS_CERT_ALTNAME_INVALID");
  });

  it("closes unknown names, counted and logged, and routes a name from the routes file", async () => {
    const before = (await refusals("unknown_name")) ?? 0;
    const r = await handshake(gateway.port, "nobody.example.com", stream.ca.certPem);
    assert.ok(r.error, "the handshake failed");
    await waitForMetric(
      gateway.metricsPort,
      "devicestreams_gateway_connections_total",
      before + 1,
      'reason="unknown_name"',
    );
    assert.match(gateway.process.logs, /DS_GATEWAY_UNKNOWN_NAME: no route for server name nobody\.example\.com/);
    // closed.test is routed to a port nothing listens on: the client is closed, the refusal named.
    const refused = await handshake(gateway.port, "closed.test", stream.ca.certPem);
    assert.ok(refused.error);
    await waitFor("upstream_refused to be counted", async () => ((await refusals("upstream_refused")) ?? 0) >= 1);
    assert.match(
      gateway.process.logs,
      /DS_GATEWAY_UPSTREAM_FAILED: cannot reach upstream 127\.0\.0\.1:\d+ for closed\.test/,
    );
  });

  it("reloads the routes file, and keeps the last good routes when it breaks", async () => {
    writeFileSync(routesFile, `alias.test=${relay.address}\n`);
    await waitFor(
      "the reload",
      async () =>
        ((await metric(gateway.metricsPort, "devicestreams_gateway_routes_reloads_total", 'result="ok"')) ?? 0) >= 1,
      15_000,
    );
    // alias.test is not in the relay's certificate: reaching the relay shows up as that TLS error.
    assert.equal(
      (await handshake(gateway.port, "alias.test", stream.ca.certPem)).error,
      "ERR_TLS_CERT_ALTNAME_INVALID",
    );
    writeFileSync(routesFile, "alias.test=no-port\n");
    await waitFor(
      "the failed reload",
      async () =>
        ((await metric(gateway.metricsPort, "devicestreams_gateway_routes_reloads_total", 'result="error"')) ?? 0) >= 1,
      15_000,
    );
    assert.match(gateway.process.logs, /routes file not reloaded; keeping the last good routes/);
    assert.equal(
      (await handshake(gateway.port, "alias.test", stream.ca.certPem)).error,
      "ERR_TLS_CERT_ALTNAME_INVALID",
    );
  });

  it("closes bad first bytes with their reason, while a held connection goes on", async () => {
    const held = await HeldConnection.open(client.port);
    const cases: Array<[Buffer, string, RegExp]> = [
      [Buffer.from("GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"), "not_tls", /DS_GATEWAY_NOT_TLS: plain-text bytes/],
      [
        Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]),
        "malformed",
        /DS_GATEWAY_BAD_CLIENT_HELLO: an empty handshake record/,
      ],
      [
        records(clientHelloMessage({ serverName: "a".repeat(16 * 1024) })),
        "too_large",
        /DS_GATEWAY_BAD_CLIENT_HELLO: the ClientHello declares/,
      ],
      [clientHello(), "no_server_name", /DS_GATEWAY_NO_SERVER_NAME/],
    ];
    for (const [bytes, reason, log] of cases) {
      const before = (await refusals(reason)) ?? 0;
      const s = await rawConnect(gateway.port);
      const done = closed(s);
      s.write(bytes);
      await done;
      await waitForMetric(
        gateway.metricsPort,
        "devicestreams_gateway_connections_total",
        before + 1,
        `reason="${reason}"`,
      );
      assert.match(gateway.process.logs, log);
    }
    await held.exchange();
    await held.finish();
  });

  it("closes a connection that sends no ClientHello (slowloris) after the handshake timeout", async () => {
    const before = (await refusals("handshake_timeout")) ?? 0;
    const silent = await rawConnect(gateway.port);
    const partial = await rawConnect(gateway.port);
    const done = [closed(silent), closed(partial)];
    partial.write(clientHello(name).subarray(0, 20));
    await Promise.all(done);
    await waitForMetric(
      gateway.metricsPort,
      "devicestreams_gateway_connections_total",
      before + 2,
      'reason="handshake_timeout"',
    );
    assert.match(gateway.process.logs, /DS_GATEWAY_HANDSHAKE_TIMEOUT: no ClientHello within 1000 ms/);
  });

  it("holds its per-source cap under 5,000 half-open connections while the stream carries traffic", async () => {
    const held = await HeldConnection.open(client.port);
    const before = (await refusals("source_over_capacity")) ?? 0;
    const timeoutsBefore = (await refusals("handshake_timeout")) ?? 0;
    // From another loopback address, as an attacker's host would be.
    const flood: Socket[] = [];
    const outcomes: Array<Promise<{ reset: boolean }>> = [];
    let next = 0;
    const opener = async () => {
      while (next < 5_000) {
        next++;
        try {
          const s = await rawConnect(gateway.port, "127.0.0.2");
          flood.push(s);
          outcomes.push(closed(s));
        } catch (err) {
          // The gateway's reset can beat the connect callback: that one was refused at accept too.
          assert.equal((err as NodeJS.ErrnoException).code, "ECONNRESET");
          outcomes.push(Promise.resolve({ reset: true }));
        }
      }
    };
    // What the gateway holds in the handshake phase, sampled while the flood runs.
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const n = await metric(gateway.metricsPort, "devicestreams_gateway_connections_active", 'phase="handshake"');
        most = Math.max(most, n ?? 0);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await Promise.all(Array.from({ length: 100 }, opener));
      // Meanwhile the stream moved bytes, and a new connection through the gateway works.
      await held.exchange();
      await assertHealthy(client.port, 256 * 1024);
      assert.equal((await handshake(gateway.port, name, stream.ca.certPem)).error, undefined);
      // Every flood connection was either reset at accept (over the cap) or held until the
      // handshake timeout (under it, 100 at most at a time; slots free as they time out).
      await Promise.all(outcomes);
      sampling = false;
      await sampler;
      assert.equal(outcomes.length, 5_000);
      const overCap = ((await refusals("source_over_capacity")) ?? 0) - before;
      const timedOut = ((await refusals("handshake_timeout")) ?? 0) - timeoutsBefore;
      assert.ok(overCap > 0, "some were over the cap");
      assert.equal(overCap + timedOut, 5_000, `${overCap} over the cap, ${timedOut} timed out`);
      assert.ok(most <= 102, `the gateway held ${most} connections without a ClientHello at once`);
      assert.match(gateway.process.logs, /DS_GATEWAY_OVER_CAPACITY: 100 connections are open from this address/);
      assert.equal(
        await metric(gateway.metricsPort, "devicestreams_gateway_connections_active", 'phase="handshake"'),
        0,
      );
      await held.exchange();
      await held.finish();
    } finally {
      sampling = false;
      for (const s of flood) s.destroy();
    }
  });

  it("holds its global cap: the connection over it is reset at accept", async () => {
    const small = await startGateway([`--route=${name}=${relay.address}`, "--max-connections=3"]);
    started.push(small.process);
    const open = await Promise.all([1, 2, 3].map(() => rawConnect(small.port)));
    try {
      // The reset can come before connect() reports the connection open: either way it is a reset.
      const reset = await rawConnect(small.port).then(
        async (extra) => (await closed(extra)).reset,
        (err: NodeJS.ErrnoException) => err.code === "ECONNRESET",
      );
      assert.equal(reset, true);
      await waitForMetric(small.metricsPort, "devicestreams_gateway_connections_total", 1, 'reason="over_capacity"');
      assert.match(small.process.logs, /DS_GATEWAY_OVER_CAPACITY: 3 connections are open \(--max-connections\)/);
    } finally {
      for (const s of open) s.destroy();
    }
    // With the slots free again, a real handshake through it reaches the relay.
    await waitFor("a free slot", async () => !(await handshake(small.port, name, stream.ca.certPem)).error);
  });
});
