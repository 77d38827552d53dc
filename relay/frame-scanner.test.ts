import assert from "node:assert/strict";
import { encodeData, encodeFin, encodeReset } from "../proto/frames.ts";
import { frameMessage } from "../transport/grpc-wire.ts";
import { FrameScanner } from "./frame-scanner.ts";

const g = (frame: Buffer) => frameMessage(frame);

/** Feeds `chunks` in order; what came out, the data bytes counted and the flags seen. */
function run(chunks: Buffer[], max = 1 << 20) {
  const scanner = new FrameScanner(max);
  const out: Buffer[] = [];
  let dataBytes = 0;
  let fins = 0;
  let resets = 0;
  let error: string | undefined;
  for (const c of chunks) {
    const r = scanner.scan(c);
    out.push(...r.out);
    dataBytes += r.dataBytes;
    fins += r.fin ? 1 : 0;
    resets += r.reset ? 1 : 0;
    error ??= r.error;
  }
  return { out: Buffer.concat(out), pieces: out, dataBytes, fins, resets, error, scanner };
}

describe("relay frame scanner", () => {
  const stream = Buffer.concat([
    g(encodeData(Buffer.alloc(300, 7))),
    g(encodeData(Buffer.from("x"))),
    g(encodeFin()),
    g(encodeReset("DS_PEER_RESET", "gone")),
  ]);

  it("passes a chunk of whole frames as the very Buffer, counting payload only", () => {
    const r = run([stream]);
    assert.equal(r.pieces.length, 1);
    assert.equal(r.pieces[0], stream, "not a copy");
    assert.deepEqual([r.dataBytes, r.fins, r.resets, r.error], [301, 1, 1, undefined]);
  });

  it("cut at every byte: the same bytes come out, headers held until whole", () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const r = run([stream.subarray(0, cut), stream.subarray(cut)]);
      assert.ok(r.out.equals(stream), `cut at ${cut}`);
      assert.deepEqual([r.dataBytes, r.fins, r.resets], [301, 1, 1], `cut at ${cut}`);
    }
    const bytes = [...stream].map((b) => Buffer.from([b]));
    const r = run(bytes);
    assert.ok(r.out.equals(stream), "one byte at a time");
  });

  it("never forwards part of a header; mid-body it is not at a boundary", () => {
    const frame = g(encodeData(Buffer.alloc(200, 1)));
    const scanner = new FrameScanner(1024);
    assert.equal(scanner.scan(frame.subarray(0, 6)).out.length, 0, "6 of 8 header bytes: held");
    assert.ok(scanner.atBoundary);
    const r = scanner.scan(frame.subarray(6, 50));
    assert.equal(Buffer.concat(r.out).length, 50);
    assert.ok(!scanner.atBoundary);
    scanner.scan(frame.subarray(50));
    assert.ok(scanner.atBoundary);
  });

  it("nothing after a Reset passes", () => {
    const reset = g(encodeReset("DS_PEER_RESET", "gone"));
    const r = run([Buffer.concat([reset, g(encodeData(Buffer.from("after")))]), g(encodeFin())]);
    assert.ok(r.out.equals(reset));
  });

  const refused: [string, Buffer, string][] = [
    [
      "a compressed message",
      Buffer.from([1, 0, 0, 0, 2, 0x12, 0]),
      "compressed message (the tunnel does not compress)",
    ],
    ["an unknown tag", g(Buffer.from([0x7f, 0])), "frame of unknown kind (first byte 0x7f)"],
    [
      "a length that does not match",
      Buffer.from([0, 0, 0, 0, 4, 0x0a, 5, 1, 2]),
      "data frame whose length field does not match its size",
    ],
    [
      "a varint longer than 5 bytes",
      Buffer.from([0, 0, 0, 0, 9, 0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 1]),
      "data frame whose length field does not match its size",
    ],
    ["a Fin with a body", g(Buffer.from([0x12, 1, 0])), "fin frame with a body (a Fin is empty)"],
    ["a message over the limit", g(encodeData(Buffer.alloc(2000))), "message larger than max (2003 vs. 1024 bytes)"],
  ];
  for (const [what, bad, why] of refused) {
    it(`refuses ${what}, forwarding the whole frames before it only`, () => {
      const good = g(encodeData(Buffer.from("ok")));
      const r = run([Buffer.concat([good, bad])], 1024);
      assert.equal(r.error, why);
      assert.ok(r.out.equals(good));
    });
  }

  it("data after a Fin is refused, a Reset after it passes", () => {
    assert.equal(run([g(encodeFin()), g(encodeData(Buffer.from("late")))]).error, "data frame after its Fin");
    assert.equal(run([g(encodeFin()), g(encodeReset("DS_PEER_RESET", "x"))]).resets, 1);
  });
});
