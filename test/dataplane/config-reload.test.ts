// relay.json changed under a running relay, the way Kubernetes updates a mounted Secret (a new
// timestamped folder, then the `..data` symlink swapped to it): open connections carry on to the
// last byte, new ones get the new limits and credentials; a config that is invalid or names
// another stream is refused with a log line and a metric, and the relay keeps the one it has.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type StaticStream, writeStaticStream } from "../../cli/static-stream.ts";
import { type StreamConfig, streamConfigFile } from "../../relay/contract.ts";
import { newToken, tokenSha256 } from "../../transport/credentials.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { startAgent, startClient, startRelay } from "../helpers/dataplane.ts";
import { echoTransfer } from "../helpers/echo-transfer.ts";
import { assertHealthy, connectionFailed, countMatches, metric, waitForReason } from "../helpers/robustness.ts";
import { roundTrip } from "../helpers/tcp-client.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const reloaded = /relay\.json reloaded; open connections keep running/g;
const refused = /changed relay\.json refused; keeping the one in use/g;

/** A mounted-Secret folder: `relay.json -> ..data/relay.json`, `..data -> ..<version>`. */
class SecretVolume {
  readonly dir: string;
  private version = 0;
  constructor(parent: string, text: string) {
    this.dir = join(parent, "volume");
    mkdirSync(this.dir);
    this.write(text);
    symlinkSync("..data/relay.json", join(this.dir, "relay.json"));
  }
  get path(): string {
    return join(this.dir, "relay.json");
  }
  /** As the kubelet's atomic writer does: new folder, new symlink beside, renamed over `..data`. */
  write(text: string): void {
    const name = `..v${++this.version}`;
    mkdirSync(join(this.dir, name));
    writeFileSync(join(this.dir, name, "relay.json"), text);
    symlinkSync(name, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
  }
}

describe("data plane: relay.json changed while the relay runs", function () {
  this.timeout(60_000);
  let target: TcpTarget;
  let dir: string;
  let stream: StaticStream;
  let volume: SecretVolume;
  let config: StreamConfig;
  const procs: ComponentProcess[] = [];

  before(async () => {
    target = await echoServer();
  });
  after(async () => {
    await target?.close();
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "ds-reload-"));
    stream = await writeStaticStream(dir, { service: "echo" });
    config = {
      version: 1,
      stream: "static/demo",
      service: "echo",
      credentials: [
        { role: "source", sha256: tokenSha256(stream.sourceToken) },
        { role: "destination", sha256: tokenSha256(stream.destinationToken) },
      ],
    };
    volume = new SecretVolume(dir, streamConfigFile(config));
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      for (const p of procs) console.error(`----- ${p.name} -----\n${p.logs.slice(-8000)}`);
    }
    await Promise.all(procs.splice(0).map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async () => {
    const relay = await startRelay({ ...stream, relayConfig: volume.path }, ["--max-connections", "10"]);
    procs.push(relay.process);
    const agent = await startAgent(stream, relay.address, [`echo=${target.address}`]);
    procs.push(agent.process);
    const client = await startClient(stream, relay.address);
    procs.push(client.process);
    return { relay, client };
  };
  const change = async (relay: ComponentProcess, next: StreamConfig, pattern = reloaded) => {
    const before = countMatches(relay, pattern);
    volume.write(streamConfigFile(next));
    await waitFor("the relay to take the change", () => countMatches(relay, pattern) > before, 15_000);
  };

  it("a transfer running through a reload completes with the same SHA-256; new limits hold for new connections", async () => {
    const { relay, client } = await start();
    const t = echoTransfer(client.port, 1024 * 1024, 512 * 1024);
    await waitFor("the transfer to be under way", () => t.progress().received > 64 * 1024);
    const rate = 128 * 1024;
    await change(relay.process, { ...config, limits: { maxConnections: 1, bandwidthBytesPerSecond: rate } });
    assert.match(relay.process.logs, /changed="limits\.maxConnections,limits\.bandwidthBytesPerSecond"/);
    // The open transfer holds the one place left: a new connection is refused, naming the limit.
    await roundTrip(client.port, Buffer.from("x")).catch(() => undefined);
    const reason = await waitForReason(client.process, connectionFailed, "DS_CONNECTION_LIMIT");
    assert.match(reason, /already carries 1 connections/);
    const out = await t.outcome;
    assert.equal(out.kind, "ok", out.detail);
    // After it, a new connection runs under the new bandwidth limit: 512 KiB each way at 128 KiB/s,
    // less the bucket's 256 KiB burst, cannot take less than 2 s (a lower bound: load only adds).
    const startedAt = Date.now();
    const next = echoTransfer(client.port, 512 * 1024, 64 * 1024 * 1024);
    const after = await next.outcome;
    assert.equal(after.kind, "ok", after.detail);
    const took = Date.now() - startedAt;
    assert.ok(
      took >= 1900,
      `512 KiB at 128 KiB/s after a 256 KiB burst took only ${took} ms: the new limit did not apply`,
    );
    assert.equal(await metric(relay.metricsPort, "devicestreams_relay_config_reloads_total", '{result="applied"}'), 1);
  });

  it("credentials rotate: old and new tokens both admitted, then only the new; an open connection carries on", async () => {
    const { relay, client } = await start();
    const held = echoTransfer(client.port, 1024 * 1024, 256 * 1024);
    await waitFor("the transfer to be under way", () => held.progress().received > 0);
    const rotated = newToken("source");
    const sourceOf = (token: string) => ({ role: "source" as const, sha256: tokenSha256(token) });
    const destination = config.credentials.find((c) => c.role === "destination")!;
    // Both during the rotation ...
    await change(relay.process, {
      ...config,
      credentials: [sourceOf(stream.sourceToken), sourceOf(rotated), destination],
    });
    await assertHealthy(client.port);
    writeFileSync(join(dir, "rotated.token"), rotated);
    const second = await startClient({ ...stream, sourceTokenFile: join(dir, "rotated.token") }, relay.address);
    procs.push(second.process);
    await assertHealthy(second.port);
    // ... then only the new one: the old token's new connections are refused.
    await change(relay.process, { ...config, credentials: [sourceOf(rotated), destination] });
    await roundTrip(client.port, Buffer.from("x")).catch(() => undefined);
    await waitForReason(client.process, connectionFailed, "DS_AUTH_INVALID");
    await assertHealthy(second.port);
    const out = await held.outcome;
    assert.equal(out.kind, "ok", `the connection opened with the old token: ${out.detail}`);
  });

  it("an expiresAt past setTimeout's 24.8 days does not end the stream at start; moved into the past, it ends it", async () => {
    config = { ...config, expiresAt: new Date(Date.now() + 29 * 24 * 3600_000).toISOString() };
    volume.write(streamConfigFile(config));
    const { relay, client } = await start();
    await assertHealthy(client.port);
    const held = echoTransfer(client.port, 1024 * 1024, 128 * 1024);
    await waitFor("the transfer to be under way", () => held.progress().received > 0);
    assert.doesNotMatch(relay.process.logs, /stream lifetime reached/);
    await change(relay.process, { ...config, expiresAt: new Date(Date.now() - 1000).toISOString() });
    const out = await held.outcome;
    assert.equal(out.kind, "error", `an open connection of an ended stream is reset: ${out.detail}`);
    await relay.process.waitFor(/stream lifetime reached; ending every connection/);
  });

  it("an invalid relay.json, or one naming another stream, is refused with a log line and a metric; the old one stays", async () => {
    const { relay, client } = await start();
    const p = relay.process;
    const refusals = () => metric(relay.metricsPort, "devicestreams_relay_config_reloads_total", '{result="refused"}');
    const before = countMatches(p, refused);
    volume.write("{ not json");
    await waitFor("the refusal", () => countMatches(p, refused) > before, 15_000);
    assert.match(p.logs, /changed relay\.json refused; keeping the one in use reason="[^"]*is not JSON/);
    await change(p, { ...config, credentials: [] }, refused);
    assert.match(p.logs, /credentials needs a source entry/);
    await change(p, { ...config, stream: "static/other" }, refused);
    assert.match(
      p.logs,
      /stream changed from \\"static\/demo\\" to \\"static\/other\\"; it cannot change while the relay runs/,
    );
    await change(p, { ...config, limits: { maxConnections: 0 } }, refused);
    assert.equal(await refusals(), 4);
    assert.equal(countMatches(p, reloaded), 0);
    // Still the first config: the original token works, as does a fresh connection.
    await assertHealthy(client.port);
  });
});
