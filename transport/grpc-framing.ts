// Lets grpc-js send a tunnel frame without copying it. grpc-js frames every outgoing message by
// allocating a new buffer of 5 + length bytes (the gRPC prefix: a compressed flag and a 32-bit
// length) and copying the message in; on a tunnel carrying gigabytes that copy, and the garbage
// collections its allocations trigger, were a large part of the CPU per GB (docs/benchmarks.md).
// A frame that already has 5 spare bytes in front of it in a buffer of its own (proto/prefix-room.ts)
// is instead framed in place; nothing else is ever written to.
//
// This reaches into grpc-js internals (pinned to an exact version in package.json); when they
// change, `installed` stays false, frames are copied as before, and grpc-framing.test.ts fails.
import { createRequire } from "node:module";
import { hasPrefixRoom, prefixBytes } from "../proto/prefix-room.ts";

/** Messages framed in place and copied since start (for tests and profiling). */
export const framingCounts = { inPlace: 0, copied: 0 };

function framedInPlace(message: Uint8Array): Buffer | undefined {
  if (!hasPrefixRoom(message)) {
    framingCounts.copied++;
    return undefined;
  }
  framingCounts.inPlace++;
  const framed = Buffer.from(message.buffer, message.byteOffset - prefixBytes, message.length + prefixBytes);
  framed[0] = 0; // not compressed
  framed.writeUInt32BE(message.length, 1);
  return framed;
}

interface SendFilter {
  sendCompression: { constructor: { name: string } };
  maxSendMessageLength: number;
}
type Send = (this: SendFilter, m: Promise<{ message: Buffer; flags?: number }>) => Promise<unknown>;
interface ServerCall {
  handler: { serialize(value: unknown): Buffer };
}
type Serialize = (this: ServerCall, value: unknown) => Buffer;

function install(): boolean {
  const require = createRequire(import.meta.url);
  let client: { prototype: { sendMessage: Send } };
  let server: { prototype: { serializeMessage: Serialize } };
  try {
    client = require("@grpc/grpc-js/build/src/compression-filter.js").CompressionFilter;
    server = require("@grpc/grpc-js/build/src/server-interceptors.js").BaseServerInterceptingCall;
  } catch {
    return false;
  }
  const send = client?.prototype?.sendMessage;
  const serialize = server?.prototype?.serializeMessage;
  if (typeof send !== "function" || typeof serialize !== "function") return false;

  // Client calls: the compression filter frames messages. Only uncompressed sends are framed here;
  // the size limit is checked as grpc-js checks it (the original path reports the error).
  client.prototype.sendMessage = async function (this: SendFilter, pending) {
    const m = await pending;
    const fits = this.maxSendMessageLength === -1 || m.message.length <= this.maxSendMessageLength;
    if (fits && this.sendCompression.constructor.name === "IdentityHandler") {
      const framed = framedInPlace(m.message);
      if (framed) return { message: framed, flags: m.flags };
    }
    return send.call(this, Promise.resolve(m));
  };
  // Server calls never compress responses (grpc-js does not support it), so framing is all there is.
  server.prototype.serializeMessage = function (this: ServerCall, value: unknown) {
    const message = this.handler.serialize(value);
    const framed = framedInPlace(message);
    if (framed) return framed;
    const out = Buffer.allocUnsafe(message.byteLength + prefixBytes);
    out[0] = 0;
    out.writeUInt32BE(message.byteLength, 1);
    message.copy(out, prefixBytes);
    return out;
  };
  return true;
}

/** Whether grpc-js frames our frames in place (false: it copies them, as it would by itself). */
export const installed = install();
