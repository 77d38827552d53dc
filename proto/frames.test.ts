import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { bodyLength, decodeFrame, encodeData, encodeFin, encodeReset, frameKind } from "./frames.ts";
import { devicestreams } from "./generated/devicestreams.js";

const Frame = devicestreams.v1alpha1.Frame;

describe("frames codec", () => {
  for (const size of [0, 1, 127, 128, 16383, 16384, 65536, 262144]) {
    it(`encodes a ${size}-byte data frame exactly as the generated codec does`, () => {
      const payload = randomBytes(size);
      const ours = encodeData(payload);
      assert.deepEqual(Buffer.from(ours), Buffer.from(Frame.encode({ data: payload }).finish()));
      const back = decodeFrame(ours);
      assert.equal(back.kind, "data");
      assert.ok(back.kind === "data" && back.data.equals(payload));
      assert.equal(bodyLength(ours), size);
      assert.equal(Frame.decode(ours).kind, "data");
    });
  }

  it("encodes fin and reset as the generated codec does", () => {
    assert.deepEqual(Buffer.from(encodeFin()), Buffer.from(Frame.encode({ fin: {} }).finish()));
    const reset = { code: "DS_PEER_RESET", message: "the target reset the connection" };
    assert.deepEqual(
      Buffer.from(encodeReset(reset.code, reset.message)),
      Buffer.from(Frame.encode({ reset }).finish()),
    );
    assert.deepEqual(decodeFrame(encodeReset(reset.code, reset.message)), { kind: "reset", reset });
    assert.equal(frameKind(encodeFin()), "fin");
  });

  it("rejects garbage with a reason instead of throwing", () => {
    assert.equal(decodeFrame(Buffer.from([0x99, 1, 2])).kind, "invalid");
    assert.equal(decodeFrame(Buffer.from([0x0a, 5, 1])).kind, "invalid");
    assert.equal(decodeFrame(Buffer.alloc(0)).kind, "invalid");
    assert.equal(decodeFrame(Buffer.from([0x1a, 2, 0x0a, 9])).kind, "invalid");
    assert.equal(bodyLength(Buffer.from([0x0a, 5, 1])), -1, "a length longer than the frame");
    assert.equal(bodyLength(Buffer.from([0x0a, 1, 1, 2])), -1, "a length shorter than the frame");
    assert.equal(bodyLength(Buffer.from([0x0a, 0x80])), -1, "a length cut short");
    assert.equal(bodyLength(encodeFin()), 0);
  });

  it("rejects a Fin with a body", () => {
    assert.deepEqual(decodeFrame(Buffer.from([0x12, 0x02, 0x08, 0x01])), {
      kind: "invalid",
      why: "fin frame with a body",
    });
    assert.deepEqual(decodeFrame(Buffer.concat([Buffer.from([0x12, 0x80, 0x02]), Buffer.alloc(256)])), {
      kind: "invalid",
      why: "fin frame with a body",
    });
    assert.deepEqual(decodeFrame(encodeFin()), { kind: "fin" });
  });
});
