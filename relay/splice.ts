// Joins the service-side call and the device-side call of one tunnelled connection. Frames are
// forwarded as opaque Buffers (only their header is read); a side whose peer cannot keep up
// is paused, so gRPC's flow control pushes back to the sender instead of memory growing here.
import { type ServerDuplexStream, status } from "@grpc/grpc-js";
import { bodyLength, encodeReset, type FrameKind, frameKind } from "../proto/frames.ts";
import type { PeerCode } from "../runtime/error-codes.ts";
import { errorDetail } from "../runtime/errors.ts";

type Call = ServerDuplexStream<Buffer, Buffer>;
export type Direction = "to_device" | "from_device";
export type CloseReason =
  | "completed"
  | "reset"
  | "idle_timeout"
  | "lifetime"
  | "peer_lost"
  | "protocol_error"
  | "shutdown";

const sideName: Record<Direction, string> = { to_device: "service side", from_device: "device side" };

export interface SpliceHooks {
  onBytes(direction: Direction, bytes: number): void;
  onClose(reason: CloseReason, detail: string): void;
  /** How long to stop reading a direction after `bytes` passed (the stream's bandwidth limit). */
  throttle?(direction: Direction, bytes: number): number;
}

/**
 * Open: both directions flow. A direction: its Fin was forwarded, the other still flows.
 * Closed: both Fins passed, or a reset, a loss or a protocol error ended both calls.
 */
type SpliceState = "open" | Direction | "closed";

export class Splice {
  lastActivity = Date.now();
  private state: SpliceState = "open";

  readonly id: number;
  private readonly source: Call;
  private readonly destination: Call;
  private readonly hooks: SpliceHooks;

  constructor(id: number, source: Call, destination: Call, hooks: SpliceHooks) {
    this.id = id;
    this.source = source;
    this.destination = destination;
    this.hooks = hooks;
    this.pipe(source, destination, "to_device");
    this.pipe(destination, source, "from_device");
  }

  private pipe(from: Call, to: Call, direction: Direction): void {
    from.on("data", (frame: Buffer) => this.forward(frame, from, to, direction));
    const lost = () => {
      if (this.state === "closed") return;
      const peer = direction === "to_device" ? "the client" : "the device's agent";
      // A side that sent its Fin and then left had finished (ssh kills its ProxyCommand right
      // after its last write): not a loss, but the other side can no longer answer it.
      if (this.state === direction) {
        this.reset("completed", "DS_PEER_CLOSED", `${peer} left after closing its side`, from);
        return;
      }
      this.reset("peer_lost", "DS_PEER_LOST", `${peer} went away (process stopped or network lost)`, from);
    };
    // A gRPC half-close without a Fin frame is a loss, not a FIN. Both edges always send Fin or
    // Reset before half-closing, and Node's HTTP/2 ends the streams of a session destroyed under
    // them (keepalive timeout) as if half-closed: read as Fin, that passed a transfer cut off by a
    // frozen peer to the other side as complete.
    from.on("end", () => {
      if (this.state !== direction) lost();
    });
    from.on("cancelled", lost);
    from.on("error", lost);
    from.on("close", () => {
      if (!from.readableEnded) lost();
    });
  }

  private forward(frame: Buffer, from: Call, to: Call, direction: Direction): void {
    if (this.state === "closed") return;
    this.lastActivity = Date.now();
    const kind = frameKind(frame);
    const body = kind === "invalid" ? -1 : bodyLength(frame);
    const broken = this.protocolError(frame, kind, body, direction);
    if (broken) {
      this.reset("protocol_error", "DS_PROTOCOL", `the ${sideName[direction]} sent a ${broken}`, undefined, from);
      return;
    }
    if (kind === "data") this.hooks.onBytes(direction, body);
    // Every kind is held like data: a frame the peer has not read stays queued here, so no kind
    // may bypass the peer's backpressure or the bandwidth limit.
    this.hold(from, to.write(frame) ? undefined : to, this.hooks.throttle?.(direction, body) ?? 0);
    if (kind === "fin") {
      if (this.state === "open") this.state = direction;
      else this.finish("completed", "both sides closed");
    } else if (kind === "reset") {
      this.finish("reset", `${sideName[direction]} reset the connection`);
    }
  }

  /**
   * What is wrong with a frame, or undefined. A header whose length does not match the frame would
   * pass through here unnoticed and be blamed on the relay by the far side's decoder. A Fin is
   * empty and final: after it, its side may only reset.
   */
  private protocolError(frame: Buffer, kind: FrameKind, body: number, direction: Direction): string | undefined {
    if (kind === "invalid") {
      return `frame of unknown kind (first byte 0x${(frame[0] ?? 0).toString(16).padStart(2, "0")})`;
    }
    if (body < 0) return `${kind} frame whose length field does not match its size`;
    if (kind === "fin" && body > 0) return "fin frame with a body (a Fin is empty)";
    if (kind !== "reset" && this.state === direction) return `${kind} frame after its Fin`;
    return undefined;
  }

  /** Stops reading `from` until `full` drains and `ms` have passed, whichever is later. */
  private hold(from: Call, full: Call | undefined, ms: number): void {
    if (!full && ms <= 0) return;
    from.pause();
    let waits = (full ? 1 : 0) + (ms > 0 ? 1 : 0);
    const release = () => {
      if (--waits === 0 && this.state !== "closed") from.resume();
    };
    full?.once("drain", release);
    if (ms > 0) setTimeout(release, ms);
  }

  /**
   * Ends both calls, telling each side (but `except`) to reset its TCP connection. The call of an
   * `offender` (a side that broke the protocol) also ends with an error status rather than OK,
   * so even a client that ignores our Reset frames learns why it was cut off.
   */
  reset(reason: CloseReason, code: PeerCode, message: string, except?: Call, offender?: Call): void {
    if (this.state === "closed") return;
    for (const call of [this.source, this.destination]) {
      if (call === except || call.destroyed || call.writableEnded) continue;
      call.write(encodeReset(code, message));
    }
    this.finish(reason, errorDetail(code, message), offender);
  }

  private finish(reason: CloseReason, detail: string, offender?: Call): void {
    if (this.state === "closed") return;
    this.state = "closed";
    for (const call of [this.source, this.destination]) {
      call.resume(); // drain anything still queued so the call can complete
      if (call.writableEnded || call.destroyed) continue;
      // grpc-js sends an emitted error as the call's status, after the frames already written.
      if (call === offender) call.emit("error", { code: status.INVALID_ARGUMENT, details: detail });
      else call.end();
    }
    this.hooks.onClose(reason, detail);
  }
}
