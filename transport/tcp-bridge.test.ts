import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { decodeFrame, encodeData, encodeFin, encodeReset } from "../proto/frames.ts";
import { FakeStream, tick } from "../test/helpers/fake-streams.ts";
import { relayFromFlags, relayFromOffer } from "./call-error.ts";
import { type BridgeEnd, type BridgeOptions, bridge, type FrameCall } from "./tcp-bridge.ts";

/** A bridge between a fake socket and a fake call; `ends` collects each onEnd. */
function bridged(o: Partial<BridgeOptions> & { callHighWaterMark?: number; socketHighWaterMark?: number } = {}) {
  const socket = new FakeStream({ highWaterMark: o.socketHighWaterMark });
  const call = new FakeStream({ highWaterMark: o.callHighWaterMark });
  const ends: BridgeEnd[] = [];
  const bytes = { out: 0, in: 0 };
  bridge(socket, call as unknown as FrameCall, {
    maxFrameBytes: 1024,
    side: "client",
    relay: relayFromFlags,
    onEnd: (end) => ends.push(end),
    onBytes: (direction, n) => {
      bytes[direction] += n;
    },
    ...o,
  });
  const sent = () => (call.written as Buffer[]).map(decodeFrame);
  return { socket, call, ends, bytes, sent };
}

/** The bridge writes to its socket once per turn of the event loop: a tick, then that turn's writes. */
const flushed = async () => {
  await tick();
  await tick();
};

const socketError = (code: string) => Object.assign(new Error(`read ${code}`), { code });

describe("TCP bridge", () => {
  it("carries bytes both ways as data frames, splitting a read larger than a frame", async () => {
    const { socket, call, ends, bytes, sent } = bridged();
    socket.receive(Buffer.alloc(2500, 1));
    call.receive(encodeData(Buffer.from("reply")));
    await flushed();
    assert.deepEqual(
      sent().map((f) => (f.kind === "data" ? f.data.length : f.kind)),
      [1024, 1024, 452],
    );
    assert.deepEqual(socket.written, [Buffer.from("reply")]);
    assert.deepEqual(bytes, { out: 2500, in: 5 });
    assert.equal(ends.length, 0);
  });

  it("FIN from the socket, then the far end's: each direction closes alone, then it ends clean", async () => {
    const { socket, call, ends, sent } = bridged();
    socket.receive(null);
    await tick();
    assert.deepEqual(sent(), [{ kind: "fin" }]);
    assert.ok(call.writableEnded, "the call is half-closed after the Fin");
    assert.equal(ends.length, 0, "the other direction still flows");
    call.receive(encodeData(Buffer.from("late reply")));
    await tick();
    assert.deepEqual(socket.written, [Buffer.from("late reply")]);
    call.receive(encodeFin());
    await tick();
    assert.ok(socket.writableEnded, "the far end's Fin ends the socket");
    assert.deepEqual(ends, [{ bytesOut: 0, bytesIn: 10 }]);
  });

  it("FIN from the far end, then the socket's: the socket keeps sending until its own FIN", async () => {
    const { socket, call, ends, sent } = bridged();
    call.receive(encodeFin());
    await tick();
    assert.ok(socket.writableEnded);
    assert.equal(ends.length, 0);
    socket.receive(Buffer.from("last words"));
    socket.receive(null);
    await tick();
    assert.deepEqual(
      sent().map((f) => f.kind),
      ["data", "fin"],
    );
    assert.equal(ends.length, 1);
    assert.equal(ends[0]!.error, undefined);
    // Nothing after the end is an ending of its own.
    call.emit("status", { code: status.UNAVAILABLE, details: "Connection dropped", metadata: undefined });
    socket.destroy();
    await tick();
    assert.equal(ends.length, 1);
  });

  it("a Reset frame resets the socket and half-closes the call; without a code it names the far end by role", async () => {
    for (const [side, far] of [
      ["client", "the device"],
      ["agent", "the client"],
    ] as const) {
      const { socket, call, ends } = bridged({ side });
      call.receive(encodeReset("", ""));
      await tick();
      assert.ok(socket.destroyed);
      // The relay ends the call after a Reset: an RST_STREAM per reset would look like an attack.
      assert.ok(call.writableEnded);
      assert.ok(!call.cancelled);
      assert.equal(ends[0]!.error?.code, "DS_PEER_RESET");
      assert.equal(ends[0]!.error?.message, `${far} reset the connection`);
    }
    const coded = bridged();
    coded.call.receive(encodeReset("DS_TARGET_REFUSED", "the target refused"));
    await tick();
    assert.equal(coded.ends[0]!.error?.code, "DS_TARGET_REFUSED");
    assert.equal(coded.ends[0]!.error?.message, "the target refused");
  });

  it("a call still open after the far end's Reset is cancelled once the grace has passed", async () => {
    const ended = bridged({ resetGraceMs: 20 });
    ended.call.receive(encodeReset("", ""));
    await tick();
    ended.call.emit("status", { code: status.OK, details: "", metadata: undefined });
    const hanging = bridged({ resetGraceMs: 20 });
    hanging.call.receive(encodeReset("", ""));
    await new Promise((r) => setTimeout(r, 60));
    assert.ok(!ended.call.cancelled, "a call that ended is not cancelled");
    assert.ok(hanging.call.cancelled);
  });

  it("a Fin with a body is a protocol error, not a FIN: the socket is reset and nothing is written to it", async () => {
    const { socket, call, ends } = bridged();
    call.receive(Buffer.concat([Buffer.from([0x12, 0x05]), Buffer.from("bytes")]));
    await tick();
    assert.ok(socket.destroyed);
    assert.ok(!socket.writableEnded, "not ended as by a FIN");
    assert.ok(call.cancelled);
    assert.equal(socket.written.length, 0);
    assert.equal(ends[0]!.error?.code, "DS_PROTOCOL");
    assert.match(ends[0]!.error!.message, /fin frame with a body/);
  });

  it("a socket error is sent on as a Reset naming the local end by role, and ends the bridge", async () => {
    for (const [side, local] of [
      ["client", "the client"],
      ["agent", "the target"],
    ] as const) {
      const { socket, call, ends, sent } = bridged({ side });
      socket.destroy(socketError("ECONNRESET"));
      await tick();
      assert.deepEqual(sent(), [
        { kind: "reset", reset: { code: "DS_PEER_RESET", message: `${local}: read ECONNRESET` } },
      ]);
      assert.ok(call.writableEnded);
      assert.equal(ends.length, 1);
      assert.equal(ends[0]!.error?.code, "DS_PEER_RESET");
    }
    const other = bridged();
    other.socket.destroy(socketError("EPIPE"));
    await tick();
    assert.equal(other.ends[0]!.error?.code, "DS_SOCKET_ERROR");
  });

  it("a socket closed with neither FIN nor error owes the far end a reset", async () => {
    const { socket, ends, sent } = bridged();
    socket.destroy();
    await tick();
    assert.deepEqual(sent(), [
      { kind: "reset", reset: { code: "DS_PEER_RESET", message: "the connection was closed abruptly" } },
    ]);
    assert.equal(ends[0]!.error?.code, "DS_PEER_RESET");
  });

  it("a failed call resets the socket with the error for the relay as this edge dialled it", async () => {
    const dropped = bridged();
    dropped.call.emit("status", { code: status.UNAVAILABLE, details: "Connection dropped", metadata: undefined });
    await tick();
    assert.ok(dropped.socket.destroyed);
    assert.equal(dropped.ends[0]!.error?.code, "DS_RELAY_LOST");

    const untrusted = "No connection established. Last error: Error: unable to verify the first certificate";
    const flags = bridged({ relay: relayFromFlags });
    flags.call.emit("status", { code: status.UNAVAILABLE, details: untrusted, metadata: undefined });
    const offer = bridged({ side: "agent", relay: relayFromOffer });
    offer.call.emit("status", { code: status.UNAVAILABLE, details: untrusted, metadata: undefined });
    await tick();
    assert.equal(flags.ends[0]!.error?.code, "DS_TLS_UNTRUSTED");
    assert.match(flags.ends[0]!.error!.message, /check that --ca names/);
    assert.equal(offer.ends[0]!.error?.code, "DS_TLS_UNTRUSTED");
    assert.match(offer.ends[0]!.error!.message, /the CA came with the hub's offer/);

    const cancelled = bridged();
    cancelled.call.emit("status", { code: status.CANCELLED, details: "", metadata: undefined });
    await tick();
    assert.equal(cancelled.ends[0]!.error?.code, "DS_CANCELLED");
  });

  it("a call whose reading side ends without a Fin is a reset, even after the socket's own FIN", async () => {
    for (const finFirst of [false, true]) {
      const { socket, call, ends } = bridged();
      if (finFirst) socket.receive(null);
      call.receive(null);
      await tick();
      assert.ok(socket.destroyed);
      assert.equal(ends[0]!.error?.code, "DS_PEER_RESET");
      assert.equal(ends[0]!.error?.message, "the device ended the connection without closing it");
    }
  });

  it("a call that will not take more pauses the socket until it drains", async () => {
    const { socket, call } = bridged({ callHighWaterMark: 1 });
    call.hold();
    socket.receive(Buffer.from("a"));
    await tick();
    assert.ok(socket.isPaused(), "the socket's reading stops while the call is full");
    socket.receive(Buffer.from("b"));
    await tick();
    assert.equal(call.written.length, 1, "nothing more is read into a full call");
    call.release();
    await tick();
    assert.ok(!socket.isPaused(), "the drain resumes the socket");
    assert.equal(call.written.length, 2);
  });

  it("a socket that will not take more pauses the call until it drains", async () => {
    const { socket, call } = bridged({ socketHighWaterMark: 1 });
    socket.hold();
    call.receive(encodeData(Buffer.from("a")));
    await tick();
    assert.ok(call.isPaused());
    call.receive(encodeData(Buffer.from("b")));
    await tick();
    assert.equal(socket.written.length, 1);
    socket.release();
    await flushed();
    assert.ok(!call.isPaused());
    assert.equal(socket.written.length, 2);
  });

  it("ends once: a reset after a finished connection, or a status after a reset, changes nothing", async () => {
    const { socket, call, ends } = bridged();
    call.receive(encodeReset("DS_IDLE_TIMEOUT", "idle"));
    await tick();
    call.emit("status", { code: status.UNAVAILABLE, details: "Connection dropped", metadata: undefined });
    call.receive(null);
    socket.emit("error", socketError("ECONNRESET"));
    await tick();
    assert.equal(ends.length, 1);
    assert.equal(ends[0]!.error?.code, "DS_IDLE_TIMEOUT");
  });
});
