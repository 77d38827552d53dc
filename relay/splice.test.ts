import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { decodeFrame, encodeData, encodeFin, encodeReset } from "../proto/frames.ts";
import { FakeStream, tick } from "../test/helpers/fake-streams.ts";
import { frameMessage, MessageReader } from "../transport/grpc-wire.ts";
import type { ByteCall as Call } from "./calls.ts";
import { type CloseReason, type Direction, Splice } from "./splice.ts";

/** A frame as it travels: with its gRPC length prefix. */
const g = (frame: Buffer) => frameMessage(frame);
const maxMessageBytes = 1024;

/** A splice between a fake service-side call and a fake device-side call. */
function spliced(o: { highWaterMark?: number; throttle?: (d: Direction, n: number) => number } = {}) {
  const source = new FakeStream({ highWaterMark: o.highWaterMark });
  const destination = new FakeStream({ highWaterMark: o.highWaterMark });
  const closes: { reason: CloseReason; detail: string }[] = [];
  const bytes = { to_device: 0, from_device: 0 };
  const splice = new Splice(
    7,
    source as unknown as Call,
    destination as unknown as Call,
    {
      onBytes: (d, n) => {
        bytes[d] += n;
      },
      onClose: (reason, detail) => closes.push({ reason, detail }),
      throttle: o.throttle,
    },
    maxMessageBytes,
  );
  const frames = (s: FakeStream) => {
    const read = new MessageReader(1 << 20).push(Buffer.concat(s.written as Buffer[]));
    assert.ok("messages" in read);
    return read.messages.map(decodeFrame);
  };
  return { splice, source, destination, closes, bytes, frames };
}

describe("relay splice", () => {
  it("forwards each frame untouched, counting payload bytes each way", async () => {
    const { source, destination, bytes, closes } = spliced();
    const up = g(encodeData(Buffer.from("hello")));
    const down = g(encodeData(Buffer.from("hi")));
    source.receive(up);
    destination.receive(down);
    await tick();
    assert.equal(destination.written[0], up, "the very Buffer, not a copy");
    assert.equal(source.written[0], down);
    assert.deepEqual(bytes, { to_device: 5, from_device: 2 });
    assert.equal(closes.length, 0);
  });

  it("FIN one way, then the other: the open direction keeps flowing, then both calls end complete", async () => {
    const { source, destination, closes, frames } = spliced();
    source.receive(g(encodeFin()));
    await tick();
    assert.deepEqual(frames(destination), [{ kind: "fin" }]);
    assert.equal(closes.length, 0);
    assert.ok(!source.writableEnded && !destination.writableEnded, "neither call ends on one Fin");
    destination.receive(g(encodeData(Buffer.from("still flowing"))));
    await tick();
    assert.equal(frames(source)[0]?.kind, "data");
    destination.receive(g(encodeFin()));
    await tick();
    assert.deepEqual(
      frames(source).map((f) => f.kind),
      ["data", "fin"],
    );
    assert.deepEqual(closes, [{ reason: "completed", detail: "both sides closed" }]);
    assert.ok(source.writableEnded && destination.writableEnded);
  });

  /** A frame the service side sends after `before`: both sides get a Reset, its call DS_PROTOCOL. */
  const protocolError = async (before: Buffer[], bad: Buffer, why: string) => {
    const { source, destination, closes, frames } = spliced();
    for (const f of before) source.receive(g(f));
    source.receive(g(bad));
    await tick();
    const detail = `DS_PROTOCOL: the service side sent a ${why}`;
    assert.deepEqual(
      closes,
      [{ reason: "protocol_error", detail }],
      "not completed: a Fin the same way is not the other's",
    );
    assert.deepEqual(source.errors, [{ code: status.INVALID_ARGUMENT, details: detail }]);
    assert.equal(frames(source).at(-1)?.kind, "reset");
    assert.equal(frames(destination).at(-1)?.kind, "reset");
    assert.equal(frames(destination).length, before.length + 1, "the bad frame is not forwarded");
  };

  it("a second Fin the same way is a protocol error, not the other direction's", async () => {
    await protocolError([encodeFin()], Buffer.from([0x12, 0x00]), "fin frame after its Fin");
  });

  it("data after a Fin from the same side is a protocol error", async () => {
    await protocolError(
      [encodeData(Buffer.from("a")), encodeFin()],
      encodeData(Buffer.from("late")),
      "data frame after its Fin",
    );
  });

  it("a Fin with a body is a protocol error", async () => {
    const body = Buffer.alloc(300, 1);
    await protocolError(
      [],
      Buffer.concat([Buffer.from([0x12, 0xac, 0x02]), body]),
      "fin frame with a body (a Fin is empty)",
    );
  });

  it("a Reset after a Fin from the same side still passes", async () => {
    const { source, destination, closes, frames } = spliced();
    source.receive(g(encodeFin()));
    source.receive(g(encodeReset("DS_PEER_RESET", "gone")));
    await tick();
    assert.deepEqual(
      frames(destination).map((f) => f.kind),
      ["fin", "reset"],
    );
    assert.equal(closes[0]?.reason, "reset");
  });

  it("Fin and Reset frames wait for a full peer like data", async () => {
    const { source, destination } = spliced({ highWaterMark: 1 });
    destination.hold();
    source.receive(g(encodeData(Buffer.from("a"))));
    await tick();
    destination.release();
    await tick();
    destination.hold();
    source.receive(g(encodeFin()));
    await tick();
    assert.ok(source.isPaused(), "a Fin to a full peer stops reading its sender");
    destination.release();
    await tick();
    assert.ok(!source.isPaused());
  });

  it("the bandwidth limit holds a Fin too", async () => {
    const seen: number[] = [];
    const { source } = spliced({
      throttle: (_d, n) => {
        seen.push(n);
        return 30;
      },
    });
    source.receive(g(encodeFin()));
    await tick();
    assert.ok(source.isPaused(), "the sender waits for the bucket");
    assert.deepEqual(seen, [0]);
  });

  it("a Reset frame goes on to the other side and ends both calls", async () => {
    const { source, destination, closes, frames } = spliced();
    destination.receive(g(encodeReset("DS_PEER_RESET", "the target: read ECONNRESET")));
    await tick();
    assert.deepEqual(frames(source), [
      { kind: "reset", reset: { code: "DS_PEER_RESET", message: "the target: read ECONNRESET" } },
    ]);
    assert.deepEqual(closes, [{ reason: "reset", detail: "device side reset the connection" }]);
    assert.ok(source.writableEnded && destination.writableEnded);
  });

  it("a cancelled call is a lost peer: the other side gets a Reset", async () => {
    for (const [failing, other, who] of [
      ["source", "destination", "the client"],
      ["destination", "source", "the device's agent"],
    ] as const) {
      const s = spliced();
      s[failing].emit("cancelled");
      await tick();
      assert.deepEqual(s.frames(s[other]), [
        {
          kind: "reset",
          reset: { code: "DS_PEER_LOST", message: `${who} went away (process stopped or network lost)` },
        },
      ]);
      assert.equal(s.closes[0]?.reason, "peer_lost");
      assert.equal(s[failing].written.length, 0, "the side that failed is not written to");
    }
  });

  it("a cancelled call after its own Fin had finished: closed, not lost", async () => {
    const { source, destination, closes, frames } = spliced();
    source.receive(g(encodeFin()));
    await tick();
    source.emit("cancelled");
    await tick();
    assert.deepEqual(frames(destination)[1], {
      kind: "reset",
      reset: { code: "DS_PEER_CLOSED", message: "the client left after closing its side" },
    });
    assert.equal(closes[0]?.reason, "completed");
  });

  it("a half-close without a Fin frame is a loss, never a FIN", async () => {
    const { source, destination, closes, frames } = spliced();
    source.receive(null);
    await tick();
    assert.equal(frames(destination)[0]?.kind, "reset");
    assert.equal(closes[0]?.reason, "peer_lost");
  });

  it("a side that cannot keep up pauses the other until it drains", async () => {
    const { source, destination } = spliced({ highWaterMark: 1 });
    destination.hold();
    source.receive(g(encodeData(Buffer.from("a"))));
    await tick();
    assert.ok(source.isPaused(), "the sender's call is no longer read");
    source.receive(g(encodeData(Buffer.from("b"))));
    await tick();
    assert.equal(destination.written.length, 1);
    destination.release();
    await tick();
    assert.ok(!source.isPaused());
    assert.equal(destination.written.length, 2);
  });

  it("the bandwidth limit holds a direction for the time the bucket asks", async () => {
    const { source, destination } = spliced({ throttle: (d) => (d === "to_device" ? 30 : 0) });
    source.receive(g(encodeData(Buffer.from("a"))));
    await tick();
    assert.ok(source.isPaused());
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!source.isPaused());
    assert.equal(destination.written.length, 1);
  });

  it("a malformed frame resets both sides and fails its sender's call with INVALID_ARGUMENT", async () => {
    const { source, destination, closes, frames } = spliced();
    destination.receive(g(Buffer.from([0x7f, 0x00])));
    await tick();
    assert.equal(frames(source)[0]?.kind, "reset");
    assert.equal(frames(destination)[0]?.kind, "reset", "the offender is told too, before its status");
    assert.deepEqual(destination.errors, [
      {
        code: status.INVALID_ARGUMENT,
        details: "DS_PROTOCOL: the device side sent a frame of unknown kind (first byte 0x7f)",
      },
    ]);
    assert.equal(closes[0]?.reason, "protocol_error");
  });

  it("closed is final: later frames, losses and resets are ignored", async () => {
    const { splice, source, destination, closes } = spliced();
    splice.reset("idle_timeout", "DS_IDLE_TIMEOUT", "idle");
    await tick();
    const written = [source.written.length, destination.written.length];
    source.receive(g(encodeData(Buffer.from("late"))));
    destination.emit("cancelled");
    splice.reset("lifetime", "DS_STREAM_EXPIRED", "over");
    await tick();
    assert.deepEqual([source.written.length, destination.written.length], written);
    assert.deepEqual(
      closes.map((c) => c.reason),
      ["idle_timeout"],
    );
  });

  it("chunks cut anywhere pass unchanged and are counted once", async () => {
    const { source, destination, bytes, frames } = spliced();
    const whole = Buffer.concat([g(encodeData(Buffer.alloc(500, 3))), g(encodeData(Buffer.from("end")))]);
    const cuts = [0, 3, 7, 100, 504, 505, whole.length];
    for (let k = 1; k < cuts.length; k++) source.receive(whole.subarray(cuts[k - 1], cuts[k]));
    await tick();
    assert.ok(Buffer.concat(destination.written as Buffer[]).equals(whole));
    assert.equal(bytes.to_device, 503);
    assert.equal(frames(destination).length, 2);
  });

  it("a reset of the relay's own does not cut into a frame: that side's call fails with the reason", async () => {
    const { splice, source, destination, frames } = spliced();
    const frame = g(encodeData(Buffer.alloc(400, 9)));
    source.receive(frame.subarray(0, 100)); // the destination has part of a frame
    await tick();
    splice.reset("idle_timeout", "DS_IDLE_TIMEOUT", "idle");
    await tick();
    assert.equal(Buffer.concat(destination.written as Buffer[]).length, 100, "no Reset frame inside the data frame");
    assert.deepEqual(destination.errors, [{ code: status.ABORTED, details: "DS_IDLE_TIMEOUT: idle" }]);
    assert.deepEqual(frames(source), [{ kind: "reset", reset: { code: "DS_IDLE_TIMEOUT", message: "idle" } }]);
  });
});
