import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRegistry } from "../runtime/http-endpoints.ts";
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from "../runtime/pki.ts";
import { quietLog } from "../test/helpers/fake-streams.ts";
import { waitFor } from "../test/helpers/wait.ts";
import { type StreamConfig, streamConfigFile } from "./contract.ts";
import { relayMetrics } from "./metrics.ts";
import { SniContexts } from "./sni-contexts.ts";
import { StreamPool } from "./stream-pool.ts";
import { StreamRegistry } from "./stream-registry.ts";

const flagLimits = {
  maxConnections: 10,
  idleTimeoutMs: 0,
  dialTimeoutMs: 1000,
  attachWaitMs: 1000,
  maxFrameBytes: 1024,
  bandwidthBytesPerSecond: 0,
};
const configOf = (name: string, o: Partial<StreamConfig> = {}): StreamConfig => ({
  version: 1,
  stream: `ns/${name}`,
  service: "ssh",
  credentials: [
    { role: "source", sha256: "a".repeat(64) },
    { role: "destination", sha256: "b".repeat(64) },
  ],
  serverNames: [`${name}.pool.test`],
  ...o,
});

describe("relay: a pool of streams from a folder", () => {
  let dir: string;
  let pair: KeyPairPem;
  let pool: StreamPool;
  let streams: StreamRegistry;
  let counts: number[];
  before(async () => {
    const ca = await createCertificateAuthority("test CA");
    pair = await issueCertificate(ca, { commonName: "r", dnsNames: ["*.pool.test"], usage: "server" });
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ds-pool-"));
    counts = [];
    streams = new StreamRegistry({ routeByName: true, onCount: (n) => counts.push(n) });
    const contexts = new SniContexts({ idFor: (n) => streams.idFor(n), onRefused: () => {} });
    pool = new StreamPool({
      dir,
      registry: streams,
      contexts,
      deviceCa: false,
      flagLimits,
      lifetimeMs: 0,
      accessTtlMs: 0,
      metrics: relayMetrics(createRegistry("relay")),
      log: quietLog,
      pollMs: 100,
    });
  });
  afterEach(() => {
    pool.close();
    streams.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** As an operator writes a folder: in a hidden one first, renamed into place. */
  const put = (folder: string, config: StreamConfig | string) => {
    const staging = join(dir, `.staging-${folder}`);
    mkdirSync(staging);
    writeFileSync(join(staging, "relay.json"), typeof config === "string" ? config : streamConfigFile(config));
    writeFileSync(join(staging, "tls.crt"), pair.certPem);
    writeFileSync(join(staging, "tls.key"), pair.keyPem);
    rmSync(join(dir, folder), { recursive: true, force: true });
    renameSync(staging, join(dir, folder));
  };

  it("serves the folders there at start, routes by server name, and follows folders added and removed", async () => {
    put("a", configOf("a"));
    put("b", configOf("b"));
    mkdirSync(join(dir, ".half-written")); // hidden: the writer's work in progress
    pool.start();
    assert.deepEqual(streams.ids().sort(), ["a", "b"]);
    assert.equal(streams.route("b.pool.test")?.stream, "ns/b");
    assert.equal(streams.route("B.POOL.TEST")?.stream, "ns/b", "server names are case-insensitive");
    assert.equal(streams.route("x.pool.test"), undefined);
    assert.equal(streams.route(undefined), undefined);
    const b = streams.get("b")!;
    put("c", configOf("c"));
    await waitFor("folder c to be served", () => streams.get("c") !== undefined, 5000);
    rmSync(join(dir, "b"), { recursive: true });
    await waitFor("folder b to be dropped", () => streams.get("b") === undefined, 5000);
    assert.equal(streams.route("b.pool.test"), undefined);
    // Its pairing ended: a later attach or connect is refused with the removal's code.
    const refused = (b.pairing as unknown as { phase: { name: string; refusal?: { code: string } } }).phase;
    assert.equal(refused.name, "ended");
    assert.equal(refused.refusal?.code, "DS_STREAM_MOVED");
    assert.deepEqual(counts, [1, 2, 3, 2]);
  });

  it("applies a changed folder live, refuses one that renames its stream or is invalid, and keeps the old", async () => {
    put("a", configOf("a"));
    pool.start();
    const a = streams.get("a")!;
    put("a", configOf("a", { limits: { maxConnections: 2 }, serverNames: ["a.pool.test", "a2.pool.test"] }));
    await waitFor("the change", () => a.config.limits?.maxConnections === 2, 5000);
    assert.equal(streams.route("a2.pool.test"), a, "a server name added live routes at once");
    put("a", "{ half");
    put("a", configOf("a", { stream: "ns/other" }));
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(streams.get("a"), a);
    assert.equal(a.config.stream, "ns/a");
    assert.equal(a.config.limits?.maxConnections, 2);
  });

  it("refuses to start on a folder that is not there", () => {
    rmSync(dir, { recursive: true });
    assert.throws(() => pool.start(), /DS_CONFIG|cannot list --streams-dir/);
  });

  it("refuses a folder that claims another stream's server name", () => {
    put("a", configOf("a"));
    put("b", configOf("b", { serverNames: ["a.pool.test"] }));
    pool.start();
    assert.deepEqual(streams.ids(), ["a"]);
    assert.equal(streams.route("a.pool.test")?.stream, "ns/a");
  });
});
