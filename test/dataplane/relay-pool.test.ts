// One pool relay (--streams-dir) serving several streams at once, with real agents and clients
// that dial 127.0.0.1 and send each stream's server name (SNI): bytes go through each stream
// exactly; a stream's token is refused on another's name; a handshake for a name no stream has,
// or for none, is ended; a stream's folder removed resets its connections with DS_STREAM_MOVED
// while the others carry on; a folder added later starts serving without a restart.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { createCertificateAuthority, type KeyPairPem } from "../../runtime/pki.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { startAgent, startClient } from "../helpers/dataplane.ts";
import { echoTransfer } from "../helpers/echo-transfer.ts";
import { type PoolRelay, type PoolStream, startPoolRelay, writePoolStream } from "../helpers/pool-relay.ts";
import { assertHealthy, connectionFailed, metric, waitForMetric, waitForReason } from "../helpers/robustness.ts";
import { roundTrip } from "../helpers/tcp-client.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";

/** A TLS handshake with the relay for `servername` (none: no SNI); resolves with how it ended. */
function handshake(address: string, ca: string, servername?: string): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve) => {
    const s = tls.connect({ host, port: Number(port), ca, servername, ALPNProtocols: ["h2"], timeout: 5_000 });
    s.once("secureConnect", () => {
      s.destroy();
      resolve("connected");
    });
    s.once("error", (err) => resolve(`error: ${err.message}`));
    s.once("timeout", () => {
      s.destroy();
      resolve("timeout");
    });
  });
}

describe("data plane: a pool relay serving several streams", function () {
  this.timeout(90_000);
  let target: TcpTarget;
  let dir: string;
  let streamsDir: string;
  let ca: KeyPairPem;
  let relay: PoolRelay;
  const streams: Record<string, PoolStream> = {};
  const ports: Record<string, number> = {};
  const procs: ComponentProcess[] = [];
  const clients: Record<string, ComponentProcess> = {};

  const serve = async (name: string) => {
    const s = streams[name]!;
    const agent = await startAgent(s, relay.address, [`echo=${target.address}`], ["--server-name", s.serverName]);
    procs.push(agent.process);
    const client = await startClient(s, relay.address, ["--server-name", s.serverName]);
    procs.push(client.process);
    clients[name] = client.process;
    ports[name] = client.port;
  };

  before(async () => {
    target = await echoServer();
    dir = mkdtempSync(join(tmpdir(), "ds-pool-"));
    streamsDir = join(dir, "streams");
    mkdirSync(streamsDir);
    ca = await createCertificateAuthority("devicestreams pool test CA");
    for (const name of ["a", "b", "c"]) {
      streams[name] = await writePoolStream(streamsDir, join(dir, "work"), name, { service: "echo", ca });
    }
    relay = await startPoolRelay(streamsDir);
    procs.push(relay.process);
    for (const name of ["a", "b", "c"]) await serve(name);
  });
  after(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop()));
    await target?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") {
      for (const p of procs) console.error(`----- ${p.name} -----\n${p.logs.slice(-6000)}`);
    }
  });

  it("carries each stream's bytes exactly, at once, and counts the streams it serves", async () => {
    const transfers = ["a", "b", "c"].map((n) => echoTransfer(ports[n]!, 2 * 1024 * 1024, 64 * 1024 * 1024));
    for (const t of transfers) {
      const out = await t.outcome;
      assert.equal(out.kind, "ok", out.detail);
    }
    assert.equal(await metric(relay.metricsPort, "devicestreams_relay_streams"), 3);
    assert.equal(await metric(relay.metricsPort, "devicestreams_relay_device_attached"), 3);
    const usage = (await (await fetch(`http://127.0.0.1:${relay.metricsPort}/usage`)).json()) as {
      streams: Array<{ stream: string; bytes: { toDevice: number } }>;
    };
    const byStream = new Map(usage.streams.map((u) => [u.stream, u.bytes.toDevice]));
    for (const n of ["a", "b", "c"]) assert.ok(byStream.get(`pool/${n}`)! >= 2 * 1024 * 1024, `usage of pool/${n}`);
  });

  it("refuses stream a's token on stream b's server name", async () => {
    const b = streams.b!;
    const wrong = await startClient({ ...b, sourceTokenFile: streams.a!.sourceTokenFile }, relay.address, [
      "--server-name",
      b.serverName,
    ]);
    procs.push(wrong.process);
    await roundTrip(wrong.port, Buffer.from("x")).catch(() => undefined);
    await waitForReason(wrong.process, connectionFailed, "DS_AUTH_INVALID");
    await assertHealthy(ports.b!);
  });

  it("ends a handshake for a server name no stream has, or for none, and counts it", async () => {
    const caPem = readFileSync(streams.a!.caCert, "utf8");
    assert.match(await handshake(relay.address, caPem, "nobody.pool.test"), /^error/);
    assert.match(await handshake(relay.address, caPem), /^error/);
    assert.equal(await handshake(relay.address, caPem, "a.pool.test"), "connected");
    const refused = (reason: string) =>
      metric(relay.metricsPort, "devicestreams_relay_grpc_connections_refused_total", `{reason="${reason}"}`);
    assert.equal(await refused("unknown_server_name"), 1);
    assert.equal(await refused("missing_server_name"), 1);
  });

  it("a stream's folder removed resets its connections with DS_STREAM_MOVED; the others carry on", async () => {
    const held = echoTransfer(ports.c!, 4 * 1024 * 1024, 256 * 1024);
    const other = echoTransfer(ports.a!, 4 * 1024 * 1024, 1024 * 1024);
    await new Promise((r) => setTimeout(r, 500));
    rmSync(join(streamsDir, "c"), { recursive: true });
    const out = await held.outcome;
    assert.equal(out.kind, "error", `an open connection of a removed stream is reset: ${out.detail}`);
    const reason = await waitForReason(clients.c!, connectionFailed, "DS_STREAM_MOVED");
    assert.match(reason, /no longer serves the stream/);
    await relay.process.waitFor(/stream removed; its connections were reset folder=c/);
    await waitForMetric(relay.metricsPort, "devicestreams_relay_streams", 2);
    // New calls for the removed stream are refused too (a new connection of its client).
    await roundTrip(ports.c!, Buffer.from("x")).catch(() => undefined);
    const kept = await other.outcome;
    assert.equal(kept.kind, "ok", `stream a's transfer: ${kept.detail}`);
    await assertHealthy(ports.b!);
  });

  it("a folder added later starts serving without a restart", async () => {
    streams.d = await writePoolStream(streamsDir, join(dir, "work"), "d", { service: "echo", ca });
    await relay.process.waitFor(/stream added[^\n]*folder=d/);
    await serve("d");
    await assertHealthy(ports.d!);
    await waitForMetric(relay.metricsPort, "devicestreams_relay_streams", 3);
    await assertHealthy(ports.a!);
  });
});
