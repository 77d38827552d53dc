import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createServer, type Server } from "node:net";
import { createRegistry } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { relayFromOffer } from "../transport/call-error.ts";
import type { RelayClient } from "../transport/relay-client.ts";
import type { AgentMessage, RelayMessage } from "../transport/relay-service.ts";
import { AllowList } from "./allow-list.ts";
import { agentMetrics } from "./metrics.ts";
import { RelaySession } from "./relay-session.ts";

/** The relay's side of an Attach call, driven by the test: what it sends, what the agent wrote. */
class FakeAttach extends EventEmitter {
  written: AgentMessage[] = [];
  write(m: AgentMessage) {
    this.written.push(m);
    return true;
  }
  end() {}
  cancel() {}
  send(m: RelayMessage) {
    this.emit("data", m);
  }
}

describe("relay session (agent)", () => {
  let target: Server;
  let dialled = 0;
  let port = 0;

  before(async () => {
    target = createServer((s) => {
      dialled++;
      s.destroy();
    });
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    port = (target.address() as { port: number }).port;
  });
  after(() => target.close());

  function session(o: { service?: string } = {}) {
    const call = new FakeAttach();
    const relay = {
      attach: () => call,
      accept: () => assert.fail("the agent bridged a connection it should have refused"),
    } as unknown as RelayClient;
    const s = new RelaySession({
      relay,
      dialled: relayFromOffer,
      token: "dst_x",
      services: o.service ? [o.service] : undefined,
      // Both are allow-listed: the stream still carries only one of them.
      allowList: new AllowList({ ssh: `127.0.0.1:${port}`, http: `127.0.0.1:${port}` }),
      dialTimeoutMs: 1000,
      metrics: agentMetrics(createRegistry("agent")),
      log: createLogger("test"),
    });
    s.start();
    return { s, call };
  }

  const dialResult = async (call: FakeAttach) => {
    for (let i = 0; i < 50 && !call.written.some((m) => m.dialResult); i++) await new Promise((r) => setTimeout(r, 10));
    return call.written.find((m) => m.dialResult)?.dialResult;
  };

  it("refuses a Dial for another allow-listed service than the stream's, and dials nothing", async () => {
    const { s, call } = session({ service: "ssh" });
    call.send({ streamInfo: { stream: "ns/s", service: "ssh", maxFrameBytes: 65536 } });
    assert.equal(s.state, "attached");
    call.send({ dial: { connectionId: 7, service: "http" } });
    const r = await dialResult(call);
    s.stop();
    assert.equal(r?.errorCode, "DS_WRONG_SERVICE");
    assert.match(r?.errorMessage ?? "", /asked for service "http" but this stream carries "ssh"/);
    assert.equal(dialled, 0);
  });

  it("static mode: the relay's StreamInfo names the one service a Dial may ask for", async () => {
    const { s, call } = session();
    call.send({ streamInfo: { stream: "ns/s", service: "http", maxFrameBytes: 65536 } });
    call.send({ dial: { connectionId: 1, service: "ssh" } });
    const r = await dialResult(call);
    s.stop();
    assert.equal(r?.errorCode, "DS_WRONG_SERVICE");
    assert.equal(dialled, 0);
  });

  it("a stream of several services: a Dial may name any of them, and a port within a range; else a DialResult error", async () => {
    const call = new FakeAttach();
    let accepted = 0;
    const relay = {
      attach: () => call,
      accept: () => {
        accepted++;
        // The bridge needs a call; one that ends at once is enough here.
        const c = new EventEmitter() as EventEmitter & Record<string, unknown>;
        Object.assign(c, { write: () => true, end: () => {}, cancel: () => {}, pause: () => {}, resume: () => {} });
        return c;
      },
    } as unknown as RelayClient;
    const s = new RelaySession({
      relay,
      dialled: relayFromOffer,
      token: "dst_x",
      services: ["ssh", "ftp"],
      allowList: new AllowList({
        ssh: `127.0.0.1:${port}`,
        ftp: `127.0.0.1:${port},30000-30010`,
        http: `127.0.0.1:${port}`,
      }),
      dialTimeoutMs: 1000,
      metrics: agentMetrics(createRegistry("agent")),
      log: createLogger("test"),
    });
    s.start();
    call.send({ streamInfo: { stream: "ns/s", service: "ssh", services: ["ssh", "ftp"], maxFrameBytes: 65536 } });
    assert.equal(s.state, "attached");
    const before = dialled;
    call.send({ dial: { connectionId: 1, service: "ftp", port: 30011 } });
    const outside = await dialResult(call);
    assert.equal(outside?.errorCode, "DS_PORT_OUT_OF_RANGE");
    assert.match(outside?.errorMessage ?? "", /ports \d+,30000-30010 on this device, not 30011/);
    call.written = [];
    call.send({ dial: { connectionId: 2, service: "http", port: 0 } });
    assert.equal((await dialResult(call))?.errorCode, "DS_WRONG_SERVICE", "allow-listed, but not the stream's");
    assert.equal(dialled, before, "nothing was dialled for a refused Dial");
    call.send({ dial: { connectionId: 3, service: "ftp", port } });
    call.send({ dial: { connectionId: 4, service: "ssh", port: 80 } });
    for (let i = 0; i < 100 && accepted < 2; i++) await new Promise((r) => setTimeout(r, 10));
    s.stop();
    assert.equal(accepted, 2, "both allowed dials reached their target");
  });

  it("refuses a stream one of whose services is not in the allow-list, naming it", () => {
    const { s, call } = session();
    call.send({ streamInfo: { stream: "ns/s", service: "ssh", services: ["ssh", "vnc"], maxFrameBytes: 65536 } });
    s.stop();
    assert.equal(call.written[0]?.refusal?.code, "DS_SERVICE_NOT_ALLOWED");
    assert.match(call.written[0]?.refusal?.message ?? "", /service "vnc" is not in this device's allow-list/);
  });

  it("refuses a relay whose stream is for another service than the offer's", () => {
    const { s, call } = session({ service: "ssh" });
    call.send({ streamInfo: { stream: "ns/s", service: "http", maxFrameBytes: 65536 } });
    s.stop();
    assert.equal(call.written[0]?.refusal?.code, "DS_WRONG_SERVICE");
    assert.ok(!call.written.some((m) => m.hello), "no hello: the agent never attached");
  });
});
