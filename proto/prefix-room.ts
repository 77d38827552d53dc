// Buffers with room for gRPC's 5-byte length prefix in front of the message, so a transport can
// frame a tunnel frame in place instead of copying it (transport/grpc-wire.ts). Which buffers have
// that room is known only where they are made (the frame codec), so they are registered in a
// WeakSet: nothing else is ever written in front of.
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

/** True for a buffer made by `withPrefixRoom`. */
export function hasPrefixRoom(message: Uint8Array): boolean {
  return roomy.has(message);
}
