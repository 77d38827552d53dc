import assert from "node:assert/strict";
import { createRegistry } from "../runtime/http-endpoints.ts";
import { quietLog } from "../test/helpers/fake-streams.ts";
import { relayMetrics } from "./metrics.ts";
import { StreamRegistry } from "./stream-registry.ts";
import { StreamRuntime } from "./stream-runtime.ts";

const runtime = (stream: string, serverNames?: string[]) =>
  new StreamRuntime({
    config: { version: 1, stream, service: "ssh", credentials: [], ...(serverNames ? { serverNames } : {}) },
    flagLimits: {
      maxConnections: 1,
      idleTimeoutMs: 60_000,
      dialTimeoutMs: 1000,
      attachWaitMs: 1000,
      maxFrameBytes: 1024,
      bandwidthBytesPerSecond: 0,
    },
    lifetimeMs: 0,
    accessTtlMs: 0,
    metrics: relayMetrics(createRegistry("relay")),
    log: quietLog,
  });

describe("relay: the registry of streams served", () => {
  it("single-stream mode gives its one stream every call, whatever the server name", () => {
    const r = new StreamRegistry({ routeByName: false });
    const s = runtime("ns/one");
    r.add("config", s);
    assert.equal(r.route(undefined), s);
    assert.equal(r.route("anything.example"), s);
    r.close();
  });

  it("pool mode routes by server name; a reload moves names; a removed stream reaches nothing", () => {
    const r = new StreamRegistry({ routeByName: true });
    const a = runtime("ns/a", ["a.test"]);
    r.add("a", a);
    assert.equal(r.nameTakenBy("a.test", "b"), "a");
    assert.equal(r.nameTakenBy("a.test", "a"), undefined);
    const result = a.reload({ ...a.config, serverNames: ["a2.test"] });
    assert.ok(result.ok);
    assert.deepEqual(result.changed, ["serverNames"]);
    r.reindex("a", ["a.test"]);
    assert.equal(r.route("a.test"), undefined);
    assert.equal(r.route("a2.test"), a);
    assert.deepEqual(
      r.usage().map((u) => u.stream),
      ["ns/a"],
    );
    assert.equal(r.remove("a", "DS_STREAM_MOVED", "moved"), a);
    assert.equal(r.route("a2.test"), undefined);
    assert.equal(r.size, 0);
    r.close();
  });
});
