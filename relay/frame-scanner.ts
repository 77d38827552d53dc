// Walks one direction of a spliced connection as it arrives: the gRPC length prefixes and the
// first bytes of each Frame (tag and length), never the payload. The chunks themselves are
// forwarded as they came; only a header cut across two chunks is held back (at most 11 bytes)
// until it is whole and checked, so that what reaches the far side always ends on a message
// boundary when the relay must speak itself (a Reset of its own) or stop.
import { tagData, tagFin, tagReset } from "../proto/frames.ts";
import { prefixBytes } from "../proto/prefix-room.ts";

/** gRPC prefix, Frame tag and up to 5 bytes of varint length: all a header can be. */
const maxHeaderBytes = prefixBytes + 1 + 5;

export interface ScanResult {
  /** What to forward, in order: usually the chunk itself, untouched. */
  out: Buffer[];
  /** Payload bytes of data frames whose header was in this chunk. */
  dataBytes: number;
  /** A Fin frame passed. */
  fin: boolean;
  /** A Reset frame passed whole: nothing after it is forwarded. */
  reset: boolean;
  /** What is wrong with the input; nothing from the bad frame on is in `out`. */
  error?: string;
  /** The error is a message over the size limit (gRPC's RESOURCE_EXHAUSTED, not a malformed frame). */
  tooLarge?: boolean;
}

type Kind = "data" | "fin" | "reset";
const kinds: Record<number, Kind> = { [tagData]: "data", [tagFin]: "fin", [tagReset]: "reset" };

export class FrameScanner {
  private readonly maxMessageBytes: number;
  // From Node's shared pool (allocUnsafe), not a buffer of its own: two scanners per open
  // connection. Only the bytes written so far are ever read.
  private readonly header = Buffer.allocUnsafe(maxHeaderBytes);
  private headerLength = 0;
  /** Bytes of the current message's body still to pass. */
  private bodyLeft = 0;
  private kind: Kind | undefined;
  private finSeen = false;
  private done = false;
  private tooLarge = false;

  constructor(maxMessageBytes: number) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** True between messages: the far side has been sent whole messages only. */
  get atBoundary(): boolean {
    return this.bodyLeft === 0;
  }

  scan(chunk: Buffer): ScanResult {
    const result: ScanResult = { out: [], dataBytes: 0, fin: false, reset: false };
    if (this.done) return result;
    let start = 0; // first byte of `chunk` not yet in `out`
    let at = 0;
    while (at < chunk.length) {
      if (this.bodyLeft > 0) {
        const step = Math.min(this.bodyLeft, chunk.length - at);
        this.bodyLeft -= step;
        at += step;
        if (this.bodyLeft === 0 && this.endMessage(result)) break;
        continue;
      }
      // A header: gather it in `header` until it is whole.
      const headerStart = at;
      const held = this.headerLength;
      while (at < chunk.length && !this.headerComplete()) this.header[this.headerLength++] = chunk[at++]!;
      if (!this.headerComplete()) {
        if (this.headerLength >= maxHeaderBytes)
          return this.fail(result, chunk, start, headerStart, this.badHeader() ?? "frame header too long");
        // Cut by the chunk's end: forward up to it, hold the header's bytes for the next chunk.
        if (headerStart > start) result.out.push(chunk.subarray(start, headerStart));
        return result;
      }
      const problem = this.badHeader();
      if (problem) return this.fail(result, chunk, start, headerStart, problem);
      if (held > 0) {
        // Its first bytes came in an earlier chunk: send the whole header as one small copy.
        result.out.push(Buffer.from(this.header.subarray(0, this.headerLength)));
        start = at;
      }
      this.headerLength = 0;
      if (this.kind === "data") result.dataBytes += this.bodyLeft;
      if (this.bodyLeft === 0 && this.endMessage(result)) break;
    }
    if (at > start) result.out.push(start === 0 && at === chunk.length ? chunk : chunk.subarray(start, at));
    return result;
  }

  /** A message ended: true when nothing after it may pass (a Reset). */
  private endMessage(result: ScanResult): boolean {
    if (this.kind === "fin") {
      this.finSeen = true;
      result.fin = true;
    } else if (this.kind === "reset") {
      this.done = true;
      result.reset = true;
      return true;
    }
    return false;
  }

  private fail(result: ScanResult, chunk: Buffer, start: number, headerStart: number, error: string): ScanResult {
    this.done = true;
    if (headerStart > start) result.out.push(chunk.subarray(start, headerStart));
    result.error = error;
    if (this.tooLarge) result.tooLarge = true;
    return result;
  }

  /** Prefix (5 bytes), tag, and a varint whose last byte has no continuation bit. */
  private headerComplete(): boolean {
    const n = this.headerLength;
    if (n < prefixBytes + 2) return false;
    return (this.header[n - 1]! & 0x80) === 0;
  }

  /**
   * What is wrong with the header now in `header`, or undefined; sets the message's kind and
   * body length when it is sound. The Frame's own length must account for the message exactly.
   */
  private badHeader(): string | undefined {
    const h = this.header;
    if (h[0] !== 0) return "compressed message (the tunnel does not compress)";
    const length = h.readUInt32BE(1);
    if (length > this.maxMessageBytes) {
      this.tooLarge = true;
      return `message larger than max (${length} vs. ${this.maxMessageBytes} bytes)`;
    }
    const tag = h[prefixBytes]!;
    const kind = kinds[tag];
    if (!kind) return `frame of unknown kind (first byte 0x${tag.toString(16).padStart(2, "0")})`;
    if (this.headerLength >= maxHeaderBytes && (h[maxHeaderBytes - 1]! & 0x80) !== 0) {
      return `${kind} frame whose length field does not match its size`;
    }
    let body = 0;
    let scale = 1;
    for (let i = prefixBytes + 1; i < this.headerLength; i++) {
      body += (h[i]! & 0x7f) * scale;
      scale *= 128;
    }
    const frameHeader = this.headerLength - prefixBytes;
    if (frameHeader + body !== length) return `${kind} frame whose length field does not match its size`;
    if (kind === "fin" && body > 0) return "fin frame with a body (a Fin is empty)";
    if (kind !== "reset" && this.finSeen) return `${kind} frame after its Fin`;
    this.kind = kind;
    this.bodyLeft = body;
    return undefined;
  }
}
