// The gRPC-over-HTTP/2 wire protocol, as far as the data path speaks it itself on node:http2
// (docs/adr/0002): message framing, status trailers, timeouts and the percent-encoding of
// grpc-message. grpc-js still serves and calls everything else; interop tests keep both in step.
import { status } from "@grpc/grpc-js";
import { hasPrefixRoom, prefixBytes } from "../proto/prefix-room.ts";

export { prefixBytes };
export const grpcContentType = "application/grpc";
/** What the server answers with: grpc-js clients accept any `application/grpc` subtype. */
export const grpcResponseContentType = "application/grpc+proto";

/** A message with its 5-byte prefix; framed in place when the buffer has room in front. */
export function frameMessage(message: Uint8Array): Buffer {
  if (hasPrefixRoom(message)) {
    const framed = Buffer.from(message.buffer, message.byteOffset - prefixBytes, message.length + prefixBytes);
    framed[0] = 0;
    framed.writeUInt32BE(message.length, 1);
    return framed;
  }
  const out = Buffer.allocUnsafe(prefixBytes + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, prefixBytes);
  return out;
}

export type ReadResult = { messages: Buffer[] } | { error: string; code: status };

/**
 * Splits a call's DATA chunks into messages. Only for calls that carry a few messages (Attach):
 * the tunnelled bytes are never split here (relay/frame-scanner.ts walks them in place).
 * A message over `maxBytes` is refused from its prefix, before its bytes are held.
 */
export class MessageReader {
  private readonly maxBytes: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  push(chunk: Buffer): ReadResult {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const messages: Buffer[] = [];
    while (this.pendingBytes >= prefixBytes) {
      const head = this.peek(prefixBytes);
      if (head[0] !== 0) return { code: status.UNIMPLEMENTED, error: "compressed messages are not supported" };
      const length = head.readUInt32BE(1);
      if (length > this.maxBytes) {
        return {
          code: status.RESOURCE_EXHAUSTED,
          error: `received message larger than max (${length} vs. ${this.maxBytes})`,
        };
      }
      if (this.pendingBytes < prefixBytes + length) break;
      messages.push(this.take(prefixBytes + length).subarray(prefixBytes));
    }
    return { messages };
  }

  /** Bytes of a message begun and not finished (a call that ends here ended mid-message). */
  get partialBytes(): number {
    return this.pendingBytes;
  }

  private peek(n: number): Buffer {
    if (this.pending[0]!.length < n) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!;
  }

  private take(n: number): Buffer {
    const first = this.peek(n);
    const out = first.subarray(0, n);
    if (first.length === n) this.pending.shift();
    else this.pending[0] = first.subarray(n);
    this.pendingBytes -= n;
    return out;
  }
}

/**
 * grpc-message is percent-encoded: every byte outside printable ASCII, and `%` itself
 * (gRPC over HTTP/2, "Responses").
 */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${hex(byte)}`;
  }
  return out;
}

const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, "0");

export function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value; // not percent-encoded by a sender that should have: show it as it came
  }
}

const timeoutUnitsMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** grpc-timeout in milliseconds; undefined when absent, NaN when malformed (the call fails INTERNAL). */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(String(value));
  if (!match) return Number.NaN;
  return Number(match[1]) * timeoutUnitsMs[match[2]!]!;
}

/** grpc-timeout for a deadline `ms` from now, in the coarsest unit that keeps it within 8 digits. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1e8) return `${whole}m`;
  if (whole / 1000 < 1e8) return `${Math.ceil(whole / 1000)}S`;
  return `${Math.ceil(whole / 60_000)}M`;
}

/** Status trailers; `details` is our `DS_CODE: message` text. */
export function statusTrailers(code: status, details: string): Record<string, string | number> {
  return details ? { "grpc-status": code, "grpc-message": encodeGrpcMessage(details) } : { "grpc-status": code };
}
