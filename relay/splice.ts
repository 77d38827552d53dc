// Joins the service-side call and the device-side call of one tunnelled connection. The DATA
// chunks of one HTTP/2 stream are written to the other as they came, length prefixes and all
// (docs/adr/0002); a scanner per direction reads only the headers, to count bytes and see Fins,
// Resets and broken frames. A side whose peer cannot keep up is paused, so HTTP/2's flow control
// pushes back to the sender instead of memory growing here.
import { status } from "@grpc/grpc-js";
import { encodeReset } from "../proto/frames.ts";
import type { PeerCode } from "../runtime/error-codes.ts";
import { errorDetail } from "../runtime/errors.ts";
import { frameMessage } from "../transport/grpc-wire.ts";
import type { ByteCall as Call } from "./calls.ts";
import { FrameScanner } from "./frame-scanner.ts";
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

/** A side that broke the protocol, and the status its call ends with. */
interface Offender {
  call: Call;
  status: status;
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
  private readonly scanners: Record<Direction, FrameScanner>;

  /** `maxMessageBytes`: the largest frame either side may send (its gRPC message length). */
  constructor(id: number, source: Call, destination: Call, hooks: SpliceHooks, maxMessageBytes: number) {
    this.id = id;
    this.source = source;
    this.destination = destination;
    this.hooks = hooks;
    this.scanners = { to_device: new FrameScanner(maxMessageBytes), from_device: new FrameScanner(maxMessageBytes) };
    // Paired: nothing reads either call's metadata again, and an idle connection holds it for hours.
    source.releaseMetadata?.();
    destination.releaseMetadata?.();
    this.pipe(source, destination, "to_device");
    this.pipe(destination, source, "from_device");
    source.resume();
    destination.resume();
  }

  private pipe(from: Call, to: Call, direction: Direction): void {
    from.on("data", (chunk: Buffer) => this.forward(chunk, from, to, direction));
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
    from.on("close", () => {
      if (!from.readableEnded) lost();
    });
  }

  private forward(chunk: Buffer, from: Call, to: Call, direction: Direction): void {
    if (this.state === "closed") return;
    this.lastActivity = Date.now();
    const scanned = this.scanners[direction].scan(chunk);
    if (scanned.dataBytes > 0) this.hooks.onBytes(direction, scanned.dataBytes);
    let full = false;
    for (const piece of scanned.out) if (!to.write(piece)) full = true;
    if (scanned.error) {
      const why = `the ${sideName[direction]} sent a ${scanned.error}`;
      this.reset("protocol_error", "DS_PROTOCOL", why, undefined, {
        call: from,
        status: scanned.tooLarge ? status.RESOURCE_EXHAUSTED : status.INVALID_ARGUMENT,
      });
      return;
    }
    // Every kind is held like data: bytes the peer has not read stay queued here, so nothing may
    // bypass the peer's backpressure or the bandwidth limit.
    this.hold(from, full ? to : undefined, this.hooks.throttle?.(direction, scanned.dataBytes) ?? 0);
    if (scanned.fin) {
      if (this.state === "open") this.state = direction;
      else this.finish("completed", "both sides closed");
    }
    if (scanned.reset) this.finish("reset", `${sideName[direction]} reset the connection`);
  }

  /** Whether `call` has been sent whole frames only, so the relay may add one of its own. */
  private atBoundary(call: Call): boolean {
    return this.scanners[call === this.source ? "from_device" : "to_device"].atBoundary;
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
   * so even a client that ignores our Reset frames learns why it was cut off. A side that is in
   * the middle of a frame cannot be sent one: its call ends with the same words as its status.
   */
  reset(reason: CloseReason, code: PeerCode, message: string, except?: Call, offender?: Offender): void {
    if (this.state === "closed") return;
    const cut: Call[] = [];
    for (const call of [this.source, this.destination]) {
      if (call === except || call.destroyed || call.writableEnded) continue;
      if (this.atBoundary(call)) call.write(frameMessage(encodeReset(code, message)));
      else cut.push(call);
    }
    this.finish(reason, errorDetail(code, message), offender, cut);
  }

  private finish(reason: CloseReason, detail: string, offender?: Offender, cut: Call[] = []): void {
    if (this.state === "closed") return;
    this.state = "closed";
    for (const call of [this.source, this.destination]) {
      call.resume(); // drain anything still queued so the call can complete
      if (call.writableEnded || call.destroyed) continue;
      // The status follows the frames already written.
      if (call === offender?.call) call.fail(offender.status, detail);
      else if (cut.includes(call)) call.fail(status.ABORTED, detail);
      else call.end();
    }
    this.hooks.onClose(reason, detail);
  }
}
