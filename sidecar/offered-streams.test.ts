import assert from "node:assert/strict";
import { createRegistry } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { AllowList } from "./allow-list.ts";
import { agentMetrics } from "./metrics.ts";
import { OfferedStreams } from "./offered-streams.ts";

describe("offered streams", () => {
  const make = () =>
    new OfferedStreams({
      allowList: new AllowList({ ssh: "127.0.0.1:22" }),
      dialTimeoutMs: 1000,
      keepalive: { timeMs: 10_000, timeoutMs: 5000 },
      metrics: agentMetrics(createRegistry("agent")),
      log: createLogger("test"),
      report: () => {},
    });

  it("refuses a service outside the allow-list with DS_SERVICE_NOT_ALLOWED, naming what it has, and dials nothing", () => {
    const streams = make();
    const reply = streams.offer({
      stream: "ns/s",
      service: "vnc",
      relayAddress: "127.0.0.1:1",
      expiresAtMs: Date.now() + 60_000,
    });
    assert.ok("refused" in reply);
    assert.equal(reply.refused.code, "DS_SERVICE_NOT_ALLOWED");
    assert.match(reply.refused.message, /service "vnc" is not in this device's allow-list \(it has: ssh\)/);
    assert.deepEqual(streams.streams, []);
  });

  it("refuses a stream of several services if one is not in the allow-list, naming it; offers from older hubs name one", () => {
    const streams = make();
    const reply = streams.offer({
      stream: "ns/s",
      service: "ssh",
      services: ["ssh", "ftp"],
      relayAddress: "127.0.0.1:1",
      expiresAtMs: Date.now() + 60_000,
    });
    assert.ok("refused" in reply);
    assert.equal(reply.refused.code, "DS_SERVICE_NOT_ALLOWED");
    assert.match(reply.refused.message, /^service "ftp" is not in this device's allow-list/);
    assert.deepEqual(streams.streams, []);
  });

  it("refuses an offer that expired on the way", () => {
    const reply = make().offer({
      stream: "ns/s",
      service: "ssh",
      relayAddress: "127.0.0.1:1",
      expiresAtMs: Date.now() - 1,
    });
    assert.ok("refused" in reply && reply.refused.code === "DS_STREAM_EXPIRED");
  });

  it("accepts an allowed service once, and a withdraw stops it", () => {
    const streams = make();
    const offer = {
      stream: "ns/s",
      service: "ssh",
      relayAddress: "127.0.0.1:1",
      destinationToken: "dst_x",
      expiresAtMs: Date.now() + 60_000,
    };
    assert.ok("accepted" in streams.offer(offer));
    assert.ok("accepted" in streams.offer(offer), "a re-offer after a reconnect");
    assert.deepEqual(streams.streams, ["ns/s"]);
    streams.withdraw("ns/s", "test");
    assert.deepEqual(streams.streams, []);
  });

  it("keeps serving a stream that lives past 24.8 days, and withdraws one at its expiry", async () => {
    const streams = make();
    const offer = (stream: string, inMs: number) =>
      streams.offer({
        stream,
        service: "ssh",
        relayAddress: "127.0.0.1:1",
        destinationToken: "dst_x",
        expiresAtMs: Date.now() + inMs,
      });
    // 720h, the longest maxLifetime: a plain setTimeout would fire after 1 ms.
    assert.ok("accepted" in offer("ns/long", 720 * 3600_000));
    assert.ok("accepted" in offer("ns/short", 30));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(streams.streams, ["ns/long"]);
    streams.withdraw("ns/long", "test");
  });
});
