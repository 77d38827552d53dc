// Fuzz target: the frame codec (proto/frames.ts) on arbitrary bytes. It must never throw (a bad
// frame is `kind: "invalid"` with a reason), must agree with the generated codec on every frame it
// accepts, must hand out views of the input (no copy, so no allocation a length field can inflate)
// and must read back what it wrote.
import assert from "node:assert/strict";
import fc from "fast-check";
import { bodyLength, decodeFrame, encodeData, encodeReset, frameKind } from "../../proto/frames.ts";
import { devicestreams } from "../../proto/generated/devicestreams.js";
import { fuzz, fuzzTimeoutMs } from "./harness.ts";

const Frame = devicestreams.v1alpha1.Frame;

function varint(n: number, padTo = 0): number[] {
  const out: number[] = [];
  do {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  } while (n > 0);
  // Overlong encodings (0x80 0x80 0x00 ...) are legal protobuf; the codec must cope with them.
  while (out.length < padTo) out.push(0x80);
  out.push(0);
  // The last byte above ends the varint; strip the high bit of the one before it when unpadded.
  if (padTo === 0) {
    out.pop();
    out[out.length - 1]! &= 0x7f;
  }
  return out;
}

/** Bytes shaped like a frame (a known or unknown tag, a length that may lie, a body), or noise. */
const frameLike = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc
    .record({
      tag: fc.oneof(fc.constantFrom(0x0a, 0x12, 0x1a), fc.integer({ min: 0, max: 255 })),
      length: fc.oneof(fc.nat(300), fc.integer({ min: 0, max: 2 ** 35 - 1 }), fc.constant(-1)),
      pad: fc.nat(5),
      body: fc.uint8Array({ maxLength: 300 }),
    })
    .map(({ tag, length, pad, body }) => {
      // -1: the length the body really has.
      const header = [tag, ...varint(length < 0 ? body.length : length, pad)];
      return Buffer.concat([Buffer.from(header), body]);
    }),
  fc
    .record({ code: fc.string(), message: fc.string(), cut: fc.nat(8), flip: fc.nat() })
    .map(({ code, message, cut, flip }) => {
      const b = Buffer.from(encodeReset(code, message));
      if (flip % 3 === 0 && b.length) b[flip % b.length]! ^= 1 << (flip % 8);
      return flip % 3 === 1 ? b.subarray(0, Math.max(0, b.length - cut)) : b;
    }),
);

function checkDecode(bytes: Uint8Array): void {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const d = decodeFrame(buf);
  assert.ok(["data", "fin", "reset", "invalid"].includes(d.kind), `unknown kind ${d.kind}`);
  const len = bodyLength(buf);
  assert.ok(Number.isSafeInteger(len) && len >= -1 && len <= buf.length, `bodyLength ${len}`);
  if (d.kind === "invalid") {
    assert.equal(typeof d.why, "string");
    assert.ok(d.why.length > 0);
    return;
  }
  assert.equal(frameKind(buf), d.kind);
  assert.ok(len >= 0, "an accepted frame has a length that matches");
  // What the codec accepts, the generated codec reads the same way.
  const generated = Frame.decode(buf);
  assert.equal(generated.kind, d.kind);
  if (d.kind === "data") {
    assert.equal(d.data.buffer, buf.buffer, "a data frame's payload is a view of the input, not a copy");
    assert.equal(d.data.length, len);
    assert.ok(Buffer.from(generated.data!).equals(d.data));
  }
  if (d.kind === "fin") assert.equal(len, 0);
  if (d.kind === "reset") {
    assert.equal(d.reset.code, generated.reset!.code ?? "");
    assert.equal(d.reset.message, generated.reset!.message ?? "");
  }
}

describe("fuzz: frame codec", function () {
  this.timeout(fuzzTimeoutMs());

  it("decodes any bytes without throwing, agreeing with the generated codec", () =>
    fuzz("frames-decode", frameLike, checkDecode, { shortRuns: 20_000 }));

  it("reads back every data and reset frame it writes", () =>
    fuzz(
      "frames-roundtrip",
      fc.oneof(
        fc.record({ data: fc.uint8Array({ maxLength: 70_000, size: "medium" }) }),
        fc.record({ code: fc.string({ unit: "grapheme" }), message: fc.string({ unit: "grapheme" }) }),
      ),
      (input) => {
        if ("data" in input) {
          const frame = encodeData(input.data);
          const d = decodeFrame(frame);
          assert.ok(d.kind === "data" && d.data.equals(input.data));
          assert.equal(bodyLength(frame), input.data.length);
        } else {
          const d = decodeFrame(encodeReset(input.code, input.message));
          assert.deepEqual(d, { kind: "reset", reset: { code: input.code, message: input.message } });
        }
      },
      { shortRuns: 3_000 },
    ));
});
