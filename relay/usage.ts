// The relay's usage report for the operator (`/usage` on the metrics port): bytes each way and
// connections, read from the relay's own counters so that the byte path stays untouched, and the
// last time bytes moved, sampled every second (idle timeouts are minutes, not milliseconds).
import { randomUUID } from "node:crypto";
import type { RelayMetrics } from "./metrics.ts";

export interface UsageReport {
  stream: string;
  bytes: { toDevice: number; fromDevice: number };
  /** This run of the relay process: its counters start from zero, the operator adds them to the last run's. */
  incarnation: string;
  activeConnections: number;
  deviceAttached: boolean;
  /** RFC 3339; the relay's start until the first byte moves. */
  lastActivityAt: string;
  startedAt: string;
}

async function gaugeValue(m: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await m.get()).values[0]?.value ?? 0;
}

export class UsageTracker {
  private readonly stream: string;
  private readonly metrics: RelayMetrics;
  private readonly startedAt = Date.now();
  private readonly incarnation = randomUUID();
  private lastActivity = this.startedAt;
  private lastTotal = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(stream: string, metrics: RelayMetrics) {
    this.stream = stream;
    this.metrics = metrics;
  }

  start(everyMs = 1000): void {
    this.timer = setInterval(() => void this.sample(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async bytes(): Promise<{ toDevice: number; fromDevice: number }> {
    const out = { toDevice: 0, fromDevice: 0 };
    for (const v of (await this.metrics.bytes.get()).values) {
      if (v.labels.direction === "to_device") out.toDevice = v.value;
      if (v.labels.direction === "from_device") out.fromDevice = v.value;
    }
    return out;
  }

  private async sample(): Promise<void> {
    const b = await this.bytes();
    const total = b.toDevice + b.fromDevice;
    if (total !== this.lastTotal) {
      this.lastTotal = total;
      this.lastActivity = Date.now();
    }
  }

  async report(): Promise<UsageReport> {
    await this.sample();
    return {
      stream: this.stream,
      bytes: await this.bytes(),
      incarnation: this.incarnation,
      activeConnections: await gaugeValue(this.metrics.connectionsActive),
      deviceAttached: (await gaugeValue(this.metrics.destinationAttached)) === 1,
      lastActivityAt: new Date(this.lastActivity).toISOString(),
      startedAt: new Date(this.startedAt).toISOString(),
    };
  }
}
