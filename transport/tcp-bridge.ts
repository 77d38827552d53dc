// Carries one TCP connection over one gRPC call of Frames, on both edges of the tunnel (client
// and agent). TCP semantics map one to one: bytes to data frames, FIN to a Fin frame (the other
// direction stays open), a reset or socket error to a Reset frame, and a failed call to a reset
// socket. Backpressure: a write that returns false pauses the producer until 'drain'.
import type { Duplex } from "node:stream";
import { type ClientDuplexStream, type StatusObject, status } from "@grpc/grpc-js";
import { decodeFrame, encodeData, encodeFin, encodeReset } from "../proto/frames.ts";
import { type ErrorCode, peerCode } from "../runtime/error-codes.ts";
import { DeviceStreamsError, parseErrorDetail } from "../runtime/errors.ts";

export type FrameCall = ClientDuplexStream<Buffer, Buffer>;

export interface BridgeEnd {
  /** Undefined when both directions closed cleanly. */
  error?: DeviceStreamsError;
  bytesOut: number;
  bytesIn: number;
}

export interface BridgeOptions {
  maxFrameBytes: number;
  /** Who the far end is, for messages ("the device", "the client"). */
  peer: string;
  onEnd?(end: BridgeEnd): void;
  /** Called per chunk: `out` is read from the socket and sent, `in` is received and written to it. */
  onBytes?(direction: "out" | "in", bytes: number): void;
}

// grpc-js reports a failed TLS handshake only as text inside an UNAVAILABLE status ("No
// connection established. Last error: Error: unable to verify the first certificate; if the root
// CA is installed locally, try running Node.js with --use-system-ca ..."). Read as "relay
// unavailable" that sends people hunting for a network fault, and Node's hint is wrong for a
// relay whose CA is given with --ca: name the cause instead. OpenSSL's verify texts are stable.
const untrustedCertificate =
  /unable to verify the first certificate|unable to get (?:local )?issuer certificate|self[- ]signed certificate|certificate has expired|certificate is not yet valid|certificate signature failure|certificate has been revoked|unsuitable certificate purpose/i;
const wrongCertificateName = /does not match certificate's altnames/i;

/** The TLS library's own words from a grpc-js connection failure, without grpc-js's wrapping. */
function tlsReason(details: string): string {
  const m =
    /Last error: (?:\w*Error(?: \[\w+\])?: )?([\s\S]*?)(?:; if the root CA is installed locally[\s\S]*|\.? Resolution note:[\s\S]*)?$/.exec(
      details,
    );
  return (m?.[1] ?? details).trim();
}

/** Turns a gRPC status from the relay into our error: the relay puts `DS_CODE: message` in details. */
export function callError(err: { code: status; details: string }): DeviceStreamsError {
  const coded = parseErrorDetail(err.details);
  if (coded) return new DeviceStreamsError(coded.code, coded.message, { retryable: err.code === status.UNAVAILABLE });
  if (err.code === status.UNAVAILABLE && untrustedCertificate.test(err.details ?? "")) {
    return new DeviceStreamsError(
      "DS_TLS_UNTRUSTED",
      `the relay's certificate is not trusted (${tlsReason(err.details)}); check that --ca names the CA that issued the relay's certificate (the stream's ca.crt), not another stream's or cluster's`,
    );
  }
  if (err.code === status.UNAVAILABLE && wrongCertificateName.test(err.details ?? "")) {
    return new DeviceStreamsError(
      "DS_TLS_NAME_MISMATCH",
      `the relay's certificate is not valid for the address dialled (${tlsReason(err.details)}); dial a name or IP the certificate lists, or pass --server-name with one`,
    );
  }
  // "Connection dropped": the relay was reached and the connection later lost (killed, restarted,
  // network gone, or silent past the keepalive timeout). The address and --ca were fine then.
  if (err.code === status.UNAVAILABLE && /^Connection dropped/.test(err.details ?? "")) {
    return new DeviceStreamsError(
      "DS_RELAY_LOST",
      "the connection to the relay was lost (the relay stopped or restarted, the network failed, or it stopped answering keepalive pings); connect again",
      { retryable: true },
    );
  }
  const name = status[err.code] as keyof typeof status | undefined;
  const code: ErrorCode = err.code === status.UNAVAILABLE ? "DS_RELAY_UNAVAILABLE" : `DS_GRPC_${name ?? err.code}`;
  const hint =
    err.code === status.UNAVAILABLE ? "; check the relay address, that the relay runs, and that --ca names its CA" : "";
  return new DeviceStreamsError(code, `${err.details || "the call to the relay failed"}${hint}`, {
    retryable: err.code === status.UNAVAILABLE,
  });
}

function socketErrorCode(err: NodeJS.ErrnoException): ErrorCode {
  return err.code === "ECONNRESET" ? "DS_PEER_RESET" : "DS_SOCKET_ERROR";
}

export function bridge(socket: Duplex, call: FrameCall, options: BridgeOptions): void {
  let sentFin = false;
  let receivedFin = false;
  let finished = false;
  const end: BridgeEnd = { bytesOut: 0, bytesIn: 0 };

  const finish = (error?: DeviceStreamsError) => {
    if (finished) return;
    finished = true;
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

  socket.on("data", (chunk: Buffer) => {
    end.bytesOut += chunk.length;
    options.onBytes?.("out", chunk.length);
    for (let off = 0; off < chunk.length; off += options.maxFrameBytes) {
      const piece =
        off === 0 && chunk.length <= options.maxFrameBytes ? chunk : chunk.subarray(off, off + options.maxFrameBytes);
      if (!call.write(encodeData(piece))) {
        socket.pause();
        call.once("drain", () => socket.resume());
      }
    }
  });
  socket.on("end", () => {
    if (!callWritable()) return;
    sentFin = true;
    call.write(encodeFin());
    call.end();
    if (receivedFin) finish();
  });
  socket.on("error", (err: NodeJS.ErrnoException) => {
    if (finished) return;
    if (callWritable()) {
      call.write(
        encodeReset(
          socketErrorCode(err),
          `${options.peer === "the device" ? "the client" : "the target"}: ${err.message}`,
        ),
      );
      call.end();
    }
    finish(new DeviceStreamsError(socketErrorCode(err), err.message, { cause: err }));
  });
  // A socket closed without FIN or error (destroyed locally) still owes the far end a reset.
  socket.on("close", () => {
    if (finished || (sentFin && receivedFin)) return;
    if (callWritable()) {
      call.write(encodeReset("DS_PEER_RESET", "the connection was closed abruptly"));
      call.end();
    }
    finish(new DeviceStreamsError("DS_PEER_RESET", "the local connection closed before the tunnel finished"));
  });

  call.on("data", (frame: Buffer) => {
    const f = decodeFrame(frame);
    switch (f.kind) {
      case "data":
        end.bytesIn += f.data.length;
        options.onBytes?.("in", f.data.length);
        if (!socket.write(f.data)) {
          call.pause();
          socket.once("drain", () => call.resume());
        }
        return;
      case "fin":
        receivedFin = true;
        socket.end();
        if (sentFin) finish();
        return;
      case "reset":
        resetSocket(
          new DeviceStreamsError(
            peerCode(f.reset.code, "DS_PEER_RESET"),
            f.reset.message || `${options.peer} reset the connection`,
          ),
        );
        call.cancel();
        return;
      default:
        resetSocket(new DeviceStreamsError("DS_PROTOCOL", `the relay sent a malformed frame (${f.why})`));
        call.cancel();
    }
  });
  call.on("error", () => {}); // reported through 'status'
  call.on("status", (s: StatusObject) => {
    if (finished || s.code === status.OK) return;
    resetSocket(
      s.code === status.CANCELLED ? new DeviceStreamsError("DS_CANCELLED", "the tunnel was cancelled") : callError(s),
    );
  });
  // The call's read side ended (after every frame was read) without a Fin: nothing more will come.
  call.on("end", () => {
    if (!receivedFin && !finished) {
      resetSocket(new DeviceStreamsError("DS_PEER_RESET", `${options.peer} ended the connection without closing it`));
    }
  });
}
