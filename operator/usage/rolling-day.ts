// Bytes a stream moved over the last 24 hours, from the relay's running total: one sample per
// minute at most, so a day of history is ~1440 numbers per stream. A relay restart resets its
// counter; the window then counts on from the new total. With no history (a new leader), the
// whole reported total counts as today's: conservative, never lenient.
const dayMs = 24 * 3600_000;
const sampleEveryMs = 60_000;

interface Sample {
  at: number;
  /** Bytes counted before this sample, across relay restarts. */
  total: number;
}

export class RollingDay {
  private samples: Sample[] = [];
  private base = 0;
  private lastRelayTotal = 0;

  /** Records the relay's total now; returns the bytes within the last day. */
  add(relayTotal: number, now: number): number {
    // The relay restarted: what it counted before is kept in `base`.
    if (relayTotal < this.lastRelayTotal) this.base += this.lastRelayTotal;
    this.lastRelayTotal = relayTotal;
    const total = this.base + relayTotal;
    const last = this.samples[this.samples.length - 1];
    if (!last || now - last.at >= sampleEveryMs) this.samples.push({ at: now, total });
    while (this.samples.length > 1 && this.samples[1]!.at <= now - dayMs) this.samples.shift();
    const first = this.samples[0]!;
    // Samples older than a day are dropped; the oldest kept one is where the day starts.
    const start = first.at <= now - dayMs ? first.total : 0;
    return total - start;
  }
}
