import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { decodeFrame, encodeData } from "../proto/frames.ts";
import { createRegistry } from "../runtime/http-endpoints.ts";
import { FakeStream, quietLog, tick } from "../test/helpers/fake-streams.ts";
import { frameMessage } from "../transport/grpc-wire.ts";
import type { AttachCall, ByteCall as FrameCall, RelayMessage } from "./calls.ts";
import { relayMetrics } from "./metrics.ts";
import { Pairing, type RelayLimits } from "./pairing.ts";

const limits: RelayLimits = {
  maxConnections: 10,
  idleTimeoutMs: 0,
  dialTimeoutMs: 60_000,
  attachWaitMs: 60_000,
  maxFrameBytes: 1024,
  bandwidthBytesPerSecond: 0,
};

describe("relay pairing", () => {
  let pairings: Pairing[] = [];
  afterEach(() => {
    // Ending clears every wait's timer.
    for (const p of pairings) p.end("shutdown", "DS_RELAY_SHUTDOWN", "test over");
    pairings = [];
  });

  const setup = (o: Partial<RelayLimits> = {}) => {
    const metrics = relayMetrics(createRegistry("relay"));
    const pairing = new Pairing(
      { version: 1, stream: "ns/s", service: "ssh", credentials: [] },
      { ...limits, ...o },
      metrics,
      quietLog,
    );
    pairings.push(pairing);
    const count = async (result: string) =>
      (await metrics.connections.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
    /** A new service-side call, handed to the pairing. */
    const connect = () => {
      const source = new FakeStream();
      pairing.connect(source as unknown as FrameCall);
      return source;
    };
    /** An agent's Attach call that says hello. */
    const attach = async (identity = "token") => {
      const agent = new FakeStream();
      pairing.attach(agent as unknown as AttachCall, identity);
      agent.receive({ hello: { agentVersion: "test" } });
      await tick();
      return agent;
    };
    const dials = (agent: FakeStream) =>
      (agent.written as RelayMessage[]).filter((m) => m.dial).map((m) => Number(m.dial!.connectionId));
    return { pairing, metrics, count, connect, attach, dials };
  };

  /** The failure status a call was ended with, as `CODE: message`. */
  const failure = (call: FakeStream) => (call.errors[0] as { code: status; details: string } | undefined)?.details;
  const failureCode = (call: FakeStream) => (call.errors[0] as { code: status } | undefined)?.code;

  it("asks the attached device to dial, and splices its Accept call to the waiting one", async () => {
    const { pairing, connect, attach, dials, count } = setup();
    const agent = await attach();
    assert.deepEqual(agent.written[0], {
      streamInfo: { stream: "ns/s", service: "ssh", services: ["ssh"], maxFrameBytes: 1024 },
    });
    const source = connect();
    assert.deepEqual(dials(agent), [1]);
    assert.equal(source.headersSent, 0, "no headers before the device reached the target");
    const destination = new FakeStream();
    pairing.accept(destination as unknown as FrameCall, 1, "token");
    assert.equal(pairing.connectionCount, 1);
    assert.equal(source.headersSent, 1, "the headers say the device reached the target");
    source.receive(frameMessage(encodeData(Buffer.from("ping"))));
    await tick();
    assert.equal(decodeFrame((destination.written[0] as Buffer).subarray(5)).kind, "data");
    assert.equal(await count("paired"), 1);
    const stray = new FakeStream();
    pairing.accept(stray as unknown as FrameCall, 1, "token");
    assert.match(failure(stray)!, /^DS_UNKNOWN_CONNECTION: connection 1 is not waiting/);
  });

  it("a call waits for the device to attach, then is dialled", async () => {
    const { connect, attach, dials } = setup();
    const source = connect();
    const agent = await attach();
    assert.deepEqual(dials(agent), [1]);
    assert.deepEqual(source.errors, []);
  });

  it("calls waiting for the device hold places toward the limit: the next is refused at once", async () => {
    const { connect, attach, dials, count } = setup({ maxConnections: 2 });
    const waiting = [connect(), connect()];
    const over = Array.from({ length: 5 }, connect);
    for (const s of over) {
      assert.equal(failureCode(s), status.RESOURCE_EXHAUSTED);
      assert.match(failure(s)!, /^DS_CONNECTION_LIMIT: stream ns\/s already carries 2 connections, its limit/);
    }
    assert.equal(await count("limit"), 5);
    const agent = await attach();
    assert.deepEqual(dials(agent), [1, 2], "one dial per waiting call, no more");
    for (const s of waiting) assert.deepEqual(s.errors, []);
    assert.ok(failure(connect())?.startsWith("DS_CONNECTION_LIMIT"), "dialling calls hold their places too");
  });

  it("a waiting call that is cancelled gives its place back", async () => {
    const { connect, count } = setup({ maxConnections: 1 });
    const first = connect();
    assert.ok(failure(connect())?.startsWith("DS_CONNECTION_LIMIT"));
    first.emit("cancelled");
    assert.equal(await count("cancelled"), 1);
    const next = connect();
    assert.deepEqual(next.errors, [], "the freed place is taken");
  });

  it("a waiting call gives up after the attach wait with DS_DEVICE_NOT_ATTACHED", async () => {
    const { connect, count } = setup({ attachWaitMs: 20 });
    const source = connect();
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(failureCode(source), status.UNAVAILABLE);
    assert.match(failure(source)!, /^DS_DEVICE_NOT_ATTACHED: no device is attached to stream ns\/s/);
    assert.equal(await count("no_device"), 1);
  });

  it("a stream of several services: the call's choice reaches the device's Dial, another service is refused before it", async () => {
    const metrics = relayMetrics(createRegistry("relay"));
    const pairing = new Pairing(
      { version: 1, stream: "ns/s", service: "ssh", services: ["ssh", "ftp"], credentials: [] },
      limits,
      metrics,
      quietLog,
    );
    pairings.push(pairing);
    const agent = new FakeStream();
    pairing.attach(agent as unknown as AttachCall, "token");
    agent.receive({ hello: { agentVersion: "test" } });
    await tick();
    assert.deepEqual((agent.written[0] as RelayMessage).streamInfo?.services, ["ssh", "ftp"]);
    const call = (requested: Parameters<Pairing["connect"]>[2]) => {
      const source = new FakeStream();
      pairing.connect(source as unknown as FrameCall, undefined, requested);
      return source;
    };
    call({ ok: true, service: "ftp", port: 30005 });
    call(undefined);
    const other = call({ ok: true, service: "web", port: 0 });
    const broken = call({ ok: false, message: "x-devicestreams-port must be a port" });
    const dialsSent = (agent.written as RelayMessage[]).filter((m) => m.dial).map((m) => m.dial);
    assert.deepEqual(dialsSent, [
      { connectionId: 1, service: "ftp", port: 30005 },
      { connectionId: 2, service: "ssh", port: 0 },
    ]);
    assert.equal(failureCode(other), status.FAILED_PRECONDITION);
    assert.equal(
      failure(other),
      `DS_SERVICE_NOT_IN_STREAM: stream ns/s carries "ssh", "ftp", not "web"; name one of them, or open a stream for "web"`,
    );
    assert.equal(failureCode(broken), status.INVALID_ARGUMENT);
    assert.match(failure(broken)!, /^DS_PROTOCOL: x-devicestreams-port must be a port/);
    const refused = (await metrics.connections.get()).values.find((v) => v.labels.result === "no_such_service");
    assert.equal(refused?.value, 2);
    assert.equal(pairing.connectionCount, 0);
  });

  it("a device that refuses the stream fails the waiting calls and the next ones", async () => {
    const { pairing, connect } = setup();
    const waiting = connect();
    const agent = new FakeStream();
    pairing.attach(agent as unknown as AttachCall, "token");
    agent.receive({ refusal: { code: "DS_SERVICE_NOT_ALLOWED", message: "not in the allow-list" } });
    await tick();
    for (const s of [waiting, connect()]) {
      assert.equal(
        failure(s),
        `DS_DEVICE_REFUSED: the device refused service "ssh": DS_SERVICE_NOT_ALLOWED: not in the allow-list`,
      );
    }
  });

  it("passes a device's refusal and dial errors on with control characters escaped", async () => {
    const { pairing, connect } = setup();
    const agent = new FakeStream();
    pairing.attach(agent as unknown as AttachCall, "token");
    agent.receive({
      refusal: { code: "DS_SERVICE_NOT_ALLOWED", message: "no\x1b[2J\x1b]0;owned\x07\r\nfake prompt$ " },
    });
    await tick();
    assert.equal(
      failure(connect()),
      `DS_DEVICE_REFUSED: the device refused service "ssh": DS_SERVICE_NOT_ALLOWED: no\\x1b[2J\\x1b]0;owned\\x07\\x0d\\x0afake prompt$ `,
    );
    const second = setup();
    const attached = await second.attach();
    const dialling = second.connect();
    attached.receive({ dialResult: { connectionId: 1, errorCode: "DS_TARGET_REFUSED", errorMessage: "x\x1b[31my" } });
    await tick();
    assert.equal(failure(dialling), "DS_TARGET_REFUSED: x\\x1b[31my");
  });

  it("a failed dial, or a device gone before it reached the target, fails the dialling call", async () => {
    const { connect, attach } = setup();
    const agent = await attach();
    const refused = connect();
    const orphan = connect();
    agent.receive({ dialResult: { connectionId: 1, errorCode: "DS_TARGET_REFUSED", errorMessage: "refused" } });
    await tick();
    assert.equal(failure(refused), "DS_TARGET_REFUSED: refused");
    agent.receive(null);
    await tick();
    assert.match(failure(orphan)!, /^DS_DEVICE_DETACHED: /);
  });

  it("ends its half of an Attach the agent half-closed, before or after hello (found by fuzzing)", async () => {
    const { pairing, attach } = setup();
    const agent = await attach();
    const silent = new FakeStream();
    pairing.attach(silent as unknown as AttachCall, "token");
    for (const call of [agent, silent]) {
      call.receive(null);
      call.resume();
    }
    await tick();
    // Else the call stayed open and its peer waited for a status forever.
    assert.equal(agent.writableEnded, true);
    assert.equal(silent.writableEnded, true);
    assert.equal(pairing.agentAttached, false);
  });

  it("draining refuses new calls while the open ones go on", async () => {
    const { pairing, connect, attach, count } = setup();
    await attach();
    const source = connect();
    const destination = new FakeStream();
    pairing.accept(destination as unknown as FrameCall, 1, "token");
    pairing.refuseNew("DS_RELAY_DRAINING", "the relay is shutting down");
    const late = connect();
    assert.equal(failureCode(late), status.UNAVAILABLE);
    assert.equal(failure(late), "DS_RELAY_DRAINING: the relay is shutting down");
    assert.equal(await count("draining"), 1);
    source.receive(frameMessage(encodeData(Buffer.from("still carried"))));
    await tick();
    assert.equal(destination.written.length, 1);
    assert.equal(pairing.connectionCount, 1);
  });

  it("ending resets every connection, fails the dialling calls and the device, and is final", async () => {
    const { pairing, connect, attach, count } = setup();
    const agent = await attach();
    const source = connect();
    const destination = new FakeStream();
    pairing.accept(destination as unknown as FrameCall, 1, "token");
    const dialling = connect();
    pairing.end("lifetime", "DS_STREAM_EXPIRED", "the stream reached its lifetime");
    const expired = "DS_STREAM_EXPIRED: the stream reached its lifetime";
    assert.equal(pairing.connectionCount, 0);
    for (const spliced of [source, destination]) {
      const last = decodeFrame((spliced.written.at(-1) as Buffer).subarray(5));
      assert.deepEqual(last, {
        kind: "reset",
        reset: { code: "DS_STREAM_EXPIRED", message: "the stream reached its lifetime" },
      });
    }
    assert.equal(failure(dialling), expired);
    assert.equal(failure(agent), expired);

    // Whatever is asked later: new calls and agents are refused with the same reason.
    pairing.refuseNew("DS_RELAY_DRAINING", "shutting down");
    pairing.end("shutdown", "DS_RELAY_SHUTDOWN", "the relay shut down");
    const late = connect();
    assert.equal(failureCode(late), status.FAILED_PRECONDITION);
    assert.equal(failure(late), expired);
    const lateAgent = new FakeStream();
    pairing.attach(lateAgent as unknown as AttachCall, "token");
    assert.equal(failure(lateAgent), expired);
    assert.equal(lateAgent.written.length, 0, "no stream info for an agent of an ended stream");
    assert.equal(await count("expired"), 2);
  });

  it("only the same device identity may replace the attached session or accept its connections", async () => {
    const { pairing, connect, attach, dials } = setup();
    const device = "ns/edge/uid-1/key-a";
    const real = await attach(device);
    const impostor = await attach("token");
    assert.match(failure(impostor) ?? "", /^DS_DEVICE_ALREADY_ATTACHED: another device identity is attached/);
    assert.equal(failureCode(impostor), status.ALREADY_EXISTS);
    assert.equal(real.errors.length, 0, "the real device stays attached");
    const source = connect();
    assert.deepEqual(dials(real), [1]);
    const stolen = new FakeStream();
    pairing.accept(stolen as unknown as FrameCall, 1, "token");
    assert.match(failure(stolen) ?? "", /^DS_UNKNOWN_CONNECTION/);
    const destination = new FakeStream();
    pairing.accept(destination as unknown as FrameCall, 1, device);
    assert.equal(destination.errors.length + source.errors.length, 0);
    assert.equal(pairing.connectionCount, 1);
    const again = await attach(device);
    assert.match(failure(real) ?? "", /^DS_SESSION_REPLACED/);
    assert.equal(again.errors.length, 0);
  });
});
