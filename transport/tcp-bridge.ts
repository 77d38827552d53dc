// Carries one TCP connection over one gRPC call of Frames, on both edges of the tunnel (client
// and agent). TCP semantics map one to one: bytes to data frames, FIN to a Fin frame (the other
// direction stays open), a reset or socket error to a Reset frame, and a failed call to a reset
// socket. Backpressure: a write that returns false pauses the producer until 'drain'.
import type { Duplex } from "node:stream";
import { type StatusObject, status } from "@grpc/grpc-js";
import { dataHeader, decodeFrame, encodeData, encodeFin, encodeReset } from "../proto/frames.ts";
import { type ErrorCode, peerCode } from "../runtime/error-codes.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { maxMessageBytes } from "../runtime/grpc-options.ts";
import { callError, type DialledServer } from "./call-error.ts";
import { FrameReader, type FrameSink } from "./frame-reader.ts";
import { readSocket } from "./socket-reads.ts";

/**
 * The call a connection is carried on: a Connect or Accept call of transport/relay-client.ts (the
 * surface and events of grpc-js's ClientDuplexStream), or a stand-in in tests.
 */
export interface FrameCall {
  write(frame: Buffer): boolean;
  end(): void;
  cancel(): void;
  pause(): unknown;
  resume(): unknown;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  on(event: "data", listener: (frame: Buffer) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  on(event: "status", listener: (s: StatusObject) => void): unknown;
  once(event: "drain", listener: () => void): unknown;
  /** The relay's response headers: it paired the call with the device side (client/socks-listener.ts). */
  once(event: "metadata", listener: () => void): unknown;
  /** Sends one message of `head` then `body`, uncopied (transport/h2-client-call.ts). */
  writeMessage?(head: Buffer, body: Buffer): boolean;
  /** Hands over the call's raw DATA chunks instead of 'data' events of whole frames. */
  readChunks?(onChunk: (chunk: Buffer) => void): void;
}

export interface BridgeEnd {
  /** Undefined when both directions closed cleanly. */
  error?: DeviceStreamsError;
  bytesOut: number;
  bytesIn: number;
}

/**
 * Which edge of the tunnel runs this bridge. The client's socket is the local application's and
 * its far end the device; the agent's socket is the target's and its far end the client.
 */
export type BridgeSide = "client" | "agent";

const ends: Record<BridgeSide, { far: string; local: string }> = {
  client: { far: "the device", local: "the client" },
  agent: { far: "the client", local: "the target" },
};

export interface BridgeOptions {
  maxFrameBytes: number;
  side: BridgeSide;
  /** The relay as this edge dialled it, for the advice in the error of a failed call. */
  relay: DialledServer;
  onEnd?(end: BridgeEnd): void;
  /** Called per chunk: `out` is read from the socket and sent, `in` is received and written to it. */
  onBytes?(direction: "out" | "in", bytes: number): void;
  /** After the far end's Reset, how long the relay has to end the call before it is cancelled. */
  resetGraceMs?: number;
}

/**
 * How far the connection has closed. TCP closes each direction on its own: our FIN sent (the
 * socket ended, sent on as a Fin frame) or the far end's received (its Fin frame, our
 * socket.end()); both make it finished, as does any reset or error.
 */
type HalfClose = "open" | "finSent" | "finReceived" | "finished";

/** How long a call whose far end sent a Reset may take to end before it is cancelled. */
const defaultResetGraceMs = 10_000;

function socketErrorCode(err: NodeJS.ErrnoException): ErrorCode {
  return err.code === "ECONNRESET" ? "DS_PEER_RESET" : "DS_SOCKET_ERROR";
}

export function bridge(socket: Duplex, call: FrameCall, options: BridgeOptions): void {
  const { far, local } = ends[options.side];
  let state: HalfClose = "open";
  const end: BridgeEnd = { bytesOut: 0, bytesIn: 0 };

  const finish = (error?: DeviceStreamsError) => {
    if (state === "finished") return;
    state = "finished";
    if (error) end.error = error;
    options.onEnd?.(end);
  };
  const resetSocket = (error: DeviceStreamsError) => {
    // Finished first: should the reset below fail, its synchronous 'error' must not be taken for
    // this connection's cause (nor answered with a Reset frame).
    finish(error);
    const s = socket as Duplex & { resetAndDestroy?: () => void };
    // Node cannot reset a TCP socket whose shutdown (our FIN, sent on the peer's Fin) is still in
    // progress: resetAndDestroy fails with EINVAL and never closes the handle, leaking the fd. A
    // Reset right after a Fin does that (ssh kills its ProxyCommand as it exits). Our FIN is on its
    // way, so a plain close ends the socket there.
    const shuttingDown = socket.writableEnded && !socket.writableFinished;
    if (s.resetAndDestroy && !socket.destroyed && !shuttingDown) s.resetAndDestroy();
    else socket.destroy(error);
  };
  const callWritable = () => !call.writableEnded && !call.destroyed;

  // A read that is the socket's own (not the shared read buffer) is sent as it is, behind a
  // small header; a shared one is copied into its frame before the buffer is read into again.
  const send = (piece: Buffer, reused: boolean) =>
    !reused && call.writeMessage ? call.writeMessage(dataHeader(piece.length), piece) : call.write(encodeData(piece));
  const onRead = (chunk: Buffer, reused: boolean) => {
    end.bytesOut += chunk.length;
    options.onBytes?.("out", chunk.length);
    for (let off = 0; off < chunk.length; off += options.maxFrameBytes) {
      const piece =
        off === 0 && chunk.length <= options.maxFrameBytes ? chunk : chunk.subarray(off, off + options.maxFrameBytes);
      if (!send(piece, reused)) {
        socket.pause();
        call.once("drain", () => socket.resume());
      }
    }
  };
  readSocket(socket, onRead);
  socket.on("end", () => {
    if (!callWritable()) return;
    if (state === "open") state = "finSent";
    call.write(encodeFin());
    call.end();
    if (state === "finReceived") finish();
  });
  socket.on("error", (err: NodeJS.ErrnoException) => {
    if (state === "finished") return;
    if (callWritable()) {
      call.write(encodeReset(socketErrorCode(err), `${local}: ${err.message}`));
      call.end();
    }
    finish(new DeviceStreamsError(socketErrorCode(err), err.message, { cause: err }));
  });
  // A socket closed without FIN or error (destroyed locally) still owes the far end a reset.
  socket.on("close", () => {
    if (state === "finished") return;
    if (callWritable()) {
      call.write(encodeReset("DS_PEER_RESET", "the connection was closed abruptly"));
      call.end();
    }
    finish(new DeviceStreamsError("DS_PEER_RESET", "the local connection closed before the tunnel finished"));
  });

  // The far end's frames, in place when the call hands over its raw chunks (relay-client.ts),
  // else one decoded frame at a time.
  let reader: FrameReader | undefined;
  const stopReading = () => {
    reader?.stop();
    call.cancel();
  };
  // After the far end's Reset the relay ends the call itself: half-close and wait for its status
  // rather than reset the HTTP/2 stream. A peer that resets streams fast is what HTTP/2 servers
  // take for the "rapid reset" attack: past 1,000 resets (33 a second after that) Node's relay
  // would end the whole session, every other connection of this client or device with it.
  const awaitStatus = () => {
    reader?.stop();
    if (callWritable()) call.end();
    call.resume(); // what is still queued is dropped unread, so that the status can arrive
    if (call.destroyed) return;
    const timer = setTimeout(() => call.cancel(), options.resetGraceMs ?? defaultResetGraceMs);
    timer.unref?.();
    call.on("status", () => clearTimeout(timer));
  };
  let waitingDrain = false;
  // What came from the relay in one turn of the event loop goes out in one writev. Not per tick:
  // node:http2 hands each 16 KiB DATA frame over in a callback of its own, so the agent wrote
  // its target one frame per syscall (strace: ~4x the writes).
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  const frames: FrameSink = {
    data: (piece) => {
      end.bytesIn += piece.length;
      options.onBytes?.("in", piece.length);
      if (!corked) {
        corked = true;
        socket.cork();
        setImmediate(uncork);
      }
      if (!socket.write(piece) && !waitingDrain) {
        waitingDrain = true;
        call.pause();
        socket.once("drain", () => {
          waitingDrain = false;
          call.resume();
        });
      }
    },
    fin: () => {
      if (state === "open") state = "finReceived";
      socket.end();
      if (state === "finSent") finish();
    },
    reset: (r) => {
      resetSocket(
        new DeviceStreamsError(peerCode(r.code, "DS_PEER_RESET"), r.message || `${far} reset the connection`),
      );
      awaitStatus();
    },
    invalid: (why) => {
      resetSocket(new DeviceStreamsError("DS_PROTOCOL", `the relay sent a malformed frame (${why})`));
      stopReading();
    },
  };
  if (call.readChunks) {
    const r = new FrameReader(frames, maxMessageBytes);
    reader = r;
    call.readChunks((chunk) => r.push(chunk));
  } else {
    call.on("data", (frame: Buffer) => {
      const f = decodeFrame(frame);
      if (f.kind === "data") frames.data(f.data);
      else if (f.kind === "fin") frames.fin();
      else if (f.kind === "reset") frames.reset(f.reset);
      else frames.invalid(f.why);
    });
  }
  call.on("error", () => {}); // reported through 'status'
  call.on("status", (s: StatusObject) => {
    if (state === "finished" || s.code === status.OK) return;
    resetSocket(
      s.code === status.CANCELLED
        ? new DeviceStreamsError("DS_CANCELLED", "the tunnel was cancelled")
        : callError(s, options.relay),
    );
  });
  // The call's read side ended (after every frame was read) without a Fin: nothing more will come.
  call.on("end", () => {
    if (state === "open" || state === "finSent") {
      resetSocket(new DeviceStreamsError("DS_PEER_RESET", `${far} ended the connection without closing it`));
    }
  });
}
