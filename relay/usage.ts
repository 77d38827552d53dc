// A stream's usage report for the operator (`/usage` on the metrics port): bytes each way and
// connections, read from the stream's pairing (its own counts: in a pool the metrics sum every
// stream), and the last time bytes moved, sampled every second by the stream registry (idle
// timeouts are minutes, not milliseconds; one timer for the whole pool, not one per stream).
import { randomUUID } from "node:crypto";
import type { Pairing } from "./pairing.ts";

export interface UsageReport {
  stream: string;
  bytes: { toDevice: number; fromDevice: number };
  /** This run of the relay process: its counters start from zero, the operator adds them to the last run's. */
  incarnation: string;
  activeConnections: number;
  deviceAttached: boolean;
  /** RFC 3339; the stream's start in this process until the first byte moves. */
  lastActivityAt: string;
  startedAt: string;
}

/** The process's run: shared by every stream it serves. */
const incarnation = randomUUID();

type Counted = Pick<Pairing, "bytesMoved" | "connectionCount" | "agentAttached">;

export class UsageTracker {
  private readonly stream: string;
  private readonly pairing: Counted;
  private readonly startedAt = Date.now();
  private lastActivity = this.startedAt;
  private lastTotal = 0;

  constructor(stream: string, pairing: Counted) {
    this.stream = stream;
    this.pairing = pairing;
  }

  sample(now = Date.now()): void {
    const total = this.pairing.bytesMoved.to_device + this.pairing.bytesMoved.from_device;
    if (total !== this.lastTotal) {
      this.lastTotal = total;
      this.lastActivity = now;
    }
  }

  report(): UsageReport {
    this.sample();
    return {
      stream: this.stream,
      bytes: { toDevice: this.pairing.bytesMoved.to_device, fromDevice: this.pairing.bytesMoved.from_device },
      incarnation,
      activeConnections: this.pairing.connectionCount,
      deviceAttached: this.pairing.agentAttached,
      lastActivityAt: new Date(this.lastActivity).toISOString(),
      startedAt: new Date(this.startedAt).toISOString(),
    };
  }
}
