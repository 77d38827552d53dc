// Reads tunnel frames (proto/frames.ts) from a Connect or Accept call's DATA chunks in place: it
// walks each message's 5-byte gRPC prefix and the frame's header (tag and length) and hands a data
// frame's payload on as views of the chunks it arrived in. A frame larger than one HTTP/2 DATA
// frame (node:http2 sends 16 KiB at most) is never reassembled, so the bytes are copied only where
// they must be: into the socket. The same checks as decodeFrame, in the same words.
import { type ResetInfo, tagData, tagFin, tagReset } from "../proto/frames.ts";
import { devicestreams } from "../proto/generated/devicestreams.js";
import { prefixBytes } from "../proto/prefix-room.ts";

export interface FrameSink {
  /** A piece of a data frame's payload, in order; a frame may come in several pieces. */
  data(piece: Buffer): void;
  fin(): void;
  reset(reset: ResetInfo): void;
  /** The stream is not a valid sequence of frames; nothing more is read. */
  invalid(why: string): void;
}

type State = "prefix" | "tag" | "length" | "data" | "reset" | "stopped";

export class FrameReader {
  private readonly sink: FrameSink;
  private readonly maxMessageBytes: number;
  private state: State = "prefix";
  private readonly prefix = Buffer.alloc(prefixBytes);
  private filled = 0;
  /** Bytes of the current message not read yet. */
  private left = 0;
  private tag = 0;
  private length = 0;
  private scale = 1;
  private lengthBytes = 0;
  private resetBody: Buffer | undefined;

  constructor(sink: FrameSink, maxMessageBytes: number) {
    this.sink = sink;
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Reads nothing more (the connection ended): the rest of a chunk being read is dropped. */
  stop(): void {
    this.state = "stopped";
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.state) {
        case "prefix": {
          const n = Math.min(prefixBytes - this.filled, chunk.length - at);
          chunk.copy(this.prefix, this.filled, at, at + n);
          this.filled += n;
          at += n;
          if (this.filled === prefixBytes) this.startMessage();
          break;
        }
        case "tag":
          this.tag = chunk[at++]!;
          this.left--;
          if (this.tag !== tagData && this.tag !== tagFin && this.tag !== tagReset) {
            this.fail(`unknown frame tag 0x${this.tag.toString(16)}`);
          } else if (this.left === 0) this.fail("frame length does not match");
          else this.state = "length";
          break;
        case "length": {
          const b = chunk[at++]!;
          this.left--;
          this.lengthBytes++;
          this.length += (b & 0x7f) * this.scale;
          this.scale *= 128;
          if (b < 0x80) this.startBody();
          else if (this.left === 0 || this.lengthBytes === 5) this.fail("frame length does not match");
          break;
        }
        case "data": {
          const n = Math.min(this.left, chunk.length - at);
          this.sink.data(n === chunk.length ? chunk : chunk.subarray(at, at + n));
          at += n;
          this.left -= n;
          if (this.left === 0) this.state = "prefix";
          break;
        }
        case "reset": {
          const n = Math.min(this.left, chunk.length - at);
          const body = this.resetBody!;
          chunk.copy(body, body.length - this.left, at, at + n);
          at += n;
          this.left -= n;
          if (this.left === 0) this.endReset(body);
          break;
        }
        case "stopped":
          return;
      }
    }
  }

  private startMessage() {
    this.filled = 0;
    const length = this.prefix.readUInt32BE(1);
    if (this.prefix[0] !== 0) return this.fail("compressed messages are not supported");
    if (length > this.maxMessageBytes) {
      return this.fail(`message larger than max (${length} vs. ${this.maxMessageBytes})`);
    }
    if (length === 0) return this.fail("unknown frame tag 0x0");
    this.left = length;
    this.length = 0;
    this.scale = 1;
    this.lengthBytes = 0;
    this.state = "tag";
  }

  private startBody() {
    if (this.length !== this.left) return this.fail("frame length does not match");
    if (this.tag === tagFin) {
      if (this.length !== 0) return this.fail("fin frame with a body");
      this.state = "prefix";
      return this.sink.fin();
    }
    if (this.tag === tagReset) {
      this.resetBody = Buffer.alloc(this.length);
      if (this.length === 0) return this.endReset(this.resetBody);
      this.state = "reset";
      return;
    }
    // An empty data frame carries nothing to write.
    this.state = this.length === 0 ? "prefix" : "data";
  }

  private endReset(body: Buffer) {
    this.resetBody = undefined;
    this.state = "prefix";
    let r: devicestreams.v1alpha1.Reset;
    try {
      r = devicestreams.v1alpha1.Reset.decode(body);
    } catch (err) {
      return this.fail(`malformed reset frame: ${(err as Error).message}`);
    }
    this.sink.reset({ code: r.code ?? "", message: r.message ?? "" });
  }

  private fail(why: string): void {
    this.state = "stopped";
    this.sink.invalid(why);
  }
}
