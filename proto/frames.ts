// Hand-written codec for `Frame` (relay.proto), byte-compatible with the generated one (see
// frames.test.ts) but built for the byte path: a data frame costs one header write and one copy
// on encode (into a buffer the transport then frames in place, see prefix-room.ts), and a view (no
// copy) on decode. The relay classifies frames by their first byte alone and never decodes them.

import { devicestreams } from "./generated/devicestreams.js";
import { withPrefixRoom } from "./prefix-room.ts";

const pb = devicestreams.v1alpha1;

export const tagData = 0x0a; // field 1, length-delimited
export const tagFin = 0x12; // field 2
export const tagReset = 0x1a; // field 3

export type FrameKind = "data" | "fin" | "reset" | "invalid";

export function frameKind(frame: Uint8Array): FrameKind {
  switch (frame[0]) {
    case tagData:
      return "data";
    case tagFin:
      return "fin";
    case tagReset:
      return "reset";
    default:
      return "invalid";
  }
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset++] = n;
  return offset;
}

export function encodeData(payload: Uint8Array): Buffer {
  const header = 1 + varintLength(payload.length);
  const out = withPrefixRoom(header + payload.length);
  out[0] = tagData;
  writeVarint(out, 1, payload.length);
  out.set(payload, header);
  return out;
}

/** A data frame's header (tag and length) for a payload sent after it separately. */
export function dataHeader(payloadLength: number): Buffer {
  const head = Buffer.allocUnsafe(1 + varintLength(payloadLength));
  head[0] = tagData;
  writeVarint(head, 1, payloadLength);
  return head;
}

const finFrame = Buffer.from([tagFin, 0x00]);

export function encodeFin(): Buffer {
  return finFrame;
}

export function encodeReset(code: string, message: string): Buffer {
  const inner = pb.Reset.encode({ code, message }).finish();
  const out = Buffer.allocUnsafe(1 + varintLength(inner.length) + inner.length);
  out[0] = tagReset;
  out.set(inner, writeVarint(out, 1, inner.length));
  return out;
}

export interface ResetInfo {
  code: string;
  message: string;
}

export type DecodedFrame =
  | { kind: "data"; data: Buffer }
  | { kind: "fin" }
  | { kind: "reset"; reset: ResetInfo }
  | { kind: "invalid"; why: string };

function readVarint(buf: Buffer, offset: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < buf.length && i < offset + 5; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return { value, next: i + 1 };
    scale *= 128;
  }
  return undefined;
}

export function decodeFrame(buf: Buffer): DecodedFrame {
  const kind = frameKind(buf);
  if (kind === "invalid") return { kind, why: `unknown frame tag 0x${(buf[0] ?? 0).toString(16)}` };
  const len = readVarint(buf, 1);
  if (!len || len.next + len.value !== buf.length) return { kind: "invalid", why: "frame length does not match" };
  if (kind === "data") return { kind, data: buf.subarray(len.next) };
  // A Fin is empty: a body would be bytes no side accounts for (they are not data).
  if (kind === "fin") return len.value === 0 ? { kind } : { kind: "invalid", why: "fin frame with a body" };
  try {
    const r = pb.Reset.decode(buf.subarray(len.next));
    return { kind, reset: { code: r.code ?? "", message: r.message ?? "" } };
  } catch (err) {
    return { kind: "invalid", why: `malformed reset frame: ${(err as Error).message}` };
  }
}

/**
 * Bytes after a frame's header (a data frame's payload), read from the header alone, or -1 when
 * the header is cut short or its length does not match the frame's size. The relay checks every
 * frame with this instead of decoding it.
 */
export function bodyLength(frame: Buffer): number {
  const len = readVarint(frame, 1);
  return len && len.next + len.value === frame.length ? len.value : -1;
}
