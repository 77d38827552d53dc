// Buffers with room for gRPC's 5-byte length prefix in front of the message, so a transport can
// frame a tunnel frame in place instead of copying it (transport/grpc-wire.ts, grpc-framing.ts). Which buffers
// have that room is known only where they are made (the frame codec) or received, so they are
// registered in a WeakSet: nothing else is ever written in front of.
/** gRPC's length prefix: a compressed flag and a 32-bit big-endian length. */
export const prefixBytes = 5;
const roomy = new WeakSet<Uint8Array>();

/** A Buffer of `length` bytes with room for the gRPC prefix in front, that transports send uncopied. */
export function withPrefixRoom(length: number): Buffer {
  const whole = Buffer.allocUnsafeSlow(prefixBytes + length);
  const view = whole.subarray(prefixBytes);
  roomy.add(view);
  return view;
}

/**
 * Registers a received message whose 5 bytes in front are its own gRPC prefix, so the relay can
 * forward it uncopied. grpc-js hands a deserializer `framed.subarray(5)` of a buffer it allocated
 * for that message alone (prefix and message); only a buffer of exactly that shape qualifies, so a
 * view into a shared pool (a small or a decompressed message) is never written in front of.
 */
export function adoptReceived(message: Buffer): Buffer {
  if (message.byteOffset === prefixBytes && message.buffer.byteLength === message.length + prefixBytes) {
    roomy.add(message);
  }
  return message;
}

/** True for a buffer made by `withPrefixRoom` or registered by `adoptReceived`. */
export function hasPrefixRoom(message: Uint8Array): boolean {
  return roomy.has(message);
}
