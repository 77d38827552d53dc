import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeFrame, encodeData, encodeFin, encodeReset } from "../proto/frames.ts";
import { FrameReader } from "./frame-reader.ts";
import { frameMessage } from "./grpc-wire.ts";

type Event = ["data", string] | ["fin"] | ["reset", string, string] | ["invalid", string];

/** What a sequence of whole frames means, by decodeFrame; consecutive data merged. */
function decoded(frames: Buffer[]): Event[] {
  const events: Event[] = [];
  for (const f of frames) {
    const d = decodeFrame(f);
    if (d.kind === "data") push(events, ["data", d.data.toString("hex")]);
    else if (d.kind === "fin") events.push(["fin"]);
    else if (d.kind === "reset") events.push(["reset", d.reset.code, d.reset.message]);
    else return [...events, ["invalid", d.why]];
  }
  return events;
}

function push(events: Event[], e: Event): void {
  const last = events.at(-1);
  if (e[0] === "data" && last?.[0] === "data") last[1] += e[1];
  else if (e[0] !== "data" || e[1] !== "") events.push(e);
}

/** What the reader makes of `stream` cut into chunks at `cuts`. */
function read(stream: Buffer, cuts: number[], maxBytes = 1 << 20): Event[] {
  const events: Event[] = [];
  const reader = new FrameReader(
    {
      data: (piece) => push(events, ["data", piece.toString("hex")]),
      fin: () => events.push(["fin"]),
      reset: (r) => events.push(["reset", r.code, r.message]),
      invalid: (why) => events.push(["invalid", why]),
    },
    maxBytes,
  );
  let at = 0;
  for (const cut of [...cuts.filter((c) => c < stream.length).sort((a, b) => a - b), stream.length]) {
    reader.push(stream.subarray(at, cut));
    at = cut;
  }
  return events;
}

const grpc = (frames: Buffer[]) => Buffer.concat(frames.map((f) => frameMessage(Buffer.from(f))));

const frame = fc.oneof(
  fc.uint8Array({ maxLength: 40_000 }).map((p) => encodeData(p)),
  fc.constant(encodeFin()),
  fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 300 })).map(([c, m]) => encodeReset(c, m)),
);

describe("frame reader: tunnel frames read in place from DATA chunks", () => {
  it("reads any frames cut into any chunks as decodeFrame reads them whole", () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, cuts) => {
        const stream = grpc(frames);
        assert.deepEqual(
          read(
            stream,
            cuts.map((c) => c % (stream.length + 1)),
          ),
          decoded(frames),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("hands a data frame on as views of the chunks, never a copy", () => {
    const stream = grpc([encodeData(Buffer.alloc(50_000, 7))]);
    const chunks = [stream.subarray(0, 16_384), stream.subarray(16_384, 32_768), stream.subarray(32_768)];
    const pieces: Buffer[] = [];
    const reader = new FrameReader({ data: (p) => pieces.push(p), fin() {}, reset() {}, invalid() {} }, 1 << 20);
    for (const c of chunks) reader.push(c);
    assert.equal(pieces.length, 3);
    for (const [i, p] of pieces.entries()) assert.equal(p.buffer, chunks[i]!.buffer);
  });

  it("refuses what decodeFrame refuses, in its words, and stops reading", () => {
    const bad: [Buffer, string][] = [
      [Buffer.from([0x42, 0x00]), "unknown frame tag 0x42"],
      [Buffer.from([0x12, 0x05, 1, 2, 3, 4, 5]), "fin frame with a body"],
      [Buffer.from([0x0a, 0x09, 1, 2]), "frame length does not match"],
      [Buffer.from([0x0a]), "frame length does not match"],
      [Buffer.from([0x1a, 0x02, 0xff, 0xff]), decoded([Buffer.from([0x1a, 0x02, 0xff, 0xff])]).at(-1)![1] as string],
    ];
    for (const [f, why] of bad) {
      const stream = grpc([encodeData(Buffer.from("ok")), f, encodeData(Buffer.from("after"))]);
      for (const cut of [1, 5, 8, stream.length - 3]) {
        assert.deepEqual(read(stream, [cut]), [
          ["data", Buffer.from("ok").toString("hex")],
          ["invalid", why],
        ]);
      }
    }
  });

  it("refuses a compressed message, one over the size limit and an empty one, from the prefix", () => {
    const compressed = Buffer.from([1, 0, 0, 0, 2, 0x12, 0]);
    assert.deepEqual(read(compressed, []), [["invalid", "compressed messages are not supported"]]);
    const big = Buffer.from([0, 0, 0x10, 0, 0]);
    assert.deepEqual(read(big, [], 65_536), [["invalid", "message larger than max (1048576 vs. 65536)"]]);
    assert.deepEqual(read(Buffer.alloc(5), []), [["invalid", "unknown frame tag 0x0"]]);
  });
});
