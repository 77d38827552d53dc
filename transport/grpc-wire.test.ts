import assert from "node:assert/strict";
import { decodeFrame, encodeData } from "../proto/frames.ts";
import { withPrefixRoom } from "../proto/prefix-room.ts";
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  frameMessage,
  MessageReader,
  parseGrpcTimeout,
} from "./grpc-wire.ts";

describe("gRPC wire helpers", () => {
  it("percent-encodes grpc-message as the spec asks, and no field value begins or ends with a space", () => {
    assert.equal(encodeGrpcMessage("DS_PROTOCOL: 100% sûr"), "DS_PROTOCOL: 100%25 s%C3%BBr");
    assert.equal(encodeGrpcMessage(" edge "), "%20edge%20");
    assert.equal(encodeGrpcMessage("tab\there\n"), "tab%09here%0A");
    for (const text of ["DS_PROTOCOL: 100% sûr ✓", " edge ", "a\u0000b", "DS_PROTOCOL: "]) {
      assert.equal(decodeGrpcMessage(encodeGrpcMessage(text)), text);
      assert.equal(decodeURI(encodeGrpcMessage(text)).replaceAll("%25", "%"), text, "as grpc-js decodes it");
    }
    assert.equal(decodeGrpcMessage("100%"), "100%", "a sender that did not encode: shown as it came");
  });

  it("reads grpc-timeout in every unit, and refuses what is not one", () => {
    assert.equal(parseGrpcTimeout(undefined), undefined);
    assert.equal(parseGrpcTimeout("250m"), 250);
    assert.equal(parseGrpcTimeout("2S"), 2000);
    assert.equal(parseGrpcTimeout("1H"), 3_600_000);
    assert.equal(parseGrpcTimeout("1500u"), 1.5);
    assert.ok(Number.isNaN(parseGrpcTimeout("123456789m")), "more than 8 digits");
    assert.ok(Number.isNaN(parseGrpcTimeout("5x")));
    assert.equal(formatGrpcTimeout(1234.2), "1235m");
    assert.equal(formatGrpcTimeout(200_000_000), "200000S");
  });

  it("frames in place when the buffer has room in front, else copies", () => {
    const roomy = withPrefixRoom(3);
    roomy.set([1, 2, 3]);
    const framed = frameMessage(roomy);
    assert.equal(framed.buffer, roomy.buffer, "same memory");
    assert.deepEqual([...framed], [0, 0, 0, 0, 3, 1, 2, 3]);
    const plain = Buffer.from([9]);
    assert.deepEqual([...frameMessage(plain)], [0, 0, 0, 0, 1, 9]);
  });

  it("splits chunks cut anywhere into messages, and refuses one over its bound from the prefix", () => {
    const stream = Buffer.concat([
      frameMessage(encodeData(Buffer.from("one"))),
      frameMessage(encodeData(Buffer.alloc(100))),
    ]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const reader = new MessageReader(1024);
      const got: Buffer[] = [];
      for (const part of [stream.subarray(0, cut), stream.subarray(cut)]) {
        const r = reader.push(part);
        assert.ok("messages" in r);
        got.push(...r.messages);
      }
      assert.deepEqual(
        got.map((m) => decodeFrame(m).kind),
        ["data", "data"],
      );
      assert.equal(reader.partialBytes, 0);
    }
    const big = new MessageReader(10).push(Buffer.from([0, 0, 0, 1, 0]));
    assert.ok("error" in big && /larger than max \(256 vs\. 10\)/.test(big.error));
    const compressed = new MessageReader(10).push(Buffer.from([1, 0, 0, 0, 1, 0]));
    assert.ok("error" in compressed);
  });
});
