// Lets the relay's grpc-js server send a tunnel frame without copying it. grpc-js frames every
// outgoing message by allocating a new buffer of 5 + length bytes (the gRPC prefix: a compressed
// flag and a 32-bit length) and copying the message in; on a tunnel carrying gigabytes that copy,
// and the garbage collections its allocations trigger, were a large part of the CPU per GB
// (docs/benchmarks.md). A frame that already has 5 spare bytes in front of it in a buffer of its
// own (proto/prefix-room.ts) is instead framed in place; nothing else is ever written to. The
// relay client frames in place itself (transport/grpc-wire.ts), so only the server side is here.
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

interface ServerCall {
  handler: { serialize(value: unknown): Buffer };
}
type Serialize = (this: ServerCall, value: unknown) => Buffer;

function install(): boolean {
  const require = createRequire(import.meta.url);
  let server: { prototype: { serializeMessage: Serialize } };
  try {
    server = require("@grpc/grpc-js/build/src/server-interceptors.js").BaseServerInterceptingCall;
  } catch {
    return false;
  }
  if (typeof server?.prototype?.serializeMessage !== "function") return false;

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
