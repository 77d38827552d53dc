// The bytes every bulk transfer moves: a 1 MiB pseudo-random block, repeated. Random-looking so a
// compressing or deduplicating hop could not flatter itself; generated from a fixed seed so the
// sender and the receiver (separate processes) agree on the SHA-256 without sending it.
import { createHash } from "node:crypto";

export const blockBytes = 1024 * 1024;

function makeBlock(): Buffer {
  const b = Buffer.alloc(blockBytes);
  // xorshift32: cheap, deterministic, and good enough to defeat compression.
  let x = 0x9e3779b9;
  for (let i = 0; i < blockBytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

export const block = makeBlock();

/** The slice of the repeated pattern at byte `offset`, at most `max` bytes long. */
export function patternAt(offset: number, max: number): Buffer {
  const start = offset % blockBytes;
  return block.subarray(start, Math.min(blockBytes, start + max));
}

const expected = new Map<number, string>();
/** SHA-256 (hex) of the first `bytes` bytes of the pattern; cached, as hashing 1 GiB takes a while. */
export function patternSha256(bytes: number): string {
  let h = expected.get(bytes);
  if (!h) {
    const hash = createHash("sha256");
    for (let off = 0; off < bytes; ) {
      const part = patternAt(off, bytes - off);
      hash.update(part);
      off += part.length;
    }
    h = hash.digest("hex");
    expected.set(bytes, h);
  }
  return h;
}
