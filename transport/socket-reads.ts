// How the bridge reads its socket: 'data' events, or net's `onread` into one buffer shared by
// every socket made with sharedReadBuffer. The bridge copies each read into its frame at once
// (encodeData), so the buffer is free again when the callback returns; otherwise Node allocates
// a buffer per read. Reading a socket so measured about half the CPU of 'data' events (64 KiB
// reads), and the whole send path about a quarter less.
import type { Duplex } from "node:stream";

/** `reused`: the chunk is a view of the shared buffer, valid only until the callback returns. */
export type OnRead = (chunk: Buffer, reused: boolean) => void;

const readers = new WeakMap<object, OnRead>();
const early = new WeakMap<object, Buffer[]>();

/** net.connect's `onread` for a socket that will be bridged; create it paused (readSocket resumes it). */
export const sharedReadBuffer = {
  buffer: Buffer.allocUnsafe(64 * 1024),
  callback(this: Duplex, bytes: number, buffer: Buffer): boolean {
    const read = readers.get(this);
    if (read) {
      read(buffer.subarray(0, bytes), true);
      return true;
    }
    // Read before anyone took the socket (it was not made paused): keep a copy, stop reading.
    const kept = early.get(this) ?? [];
    kept.push(Buffer.from(buffer.subarray(0, bytes)));
    early.set(this, kept);
    return false;
  },
};

/** Calls `onRead` with every read of `socket`, however it reads, and starts it reading. */
export function readSocket(socket: Duplex, onRead: OnRead): void {
  socket.on("data", (chunk: Buffer) => onRead(chunk, false));
  readers.set(socket, onRead);
  for (const chunk of early.get(socket)?.splice(0) ?? []) onRead(chunk, false);
  socket.resume();
}
