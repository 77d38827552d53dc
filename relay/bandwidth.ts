// Token bucket for a stream's bandwidth limit (bytes per second, per direction). It never drops
// or delays a frame already read: it says how long to stop reading the sender, and gRPC flow
// control slows the sender down from there.
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly rate: number;
  private readonly burst: number;

  constructor(bytesPerSecond: number, burstBytes = Math.max(bytesPerSecond / 4, 256 * 1024), now = performance.now()) {
    this.rate = bytesPerSecond;
    this.burst = burstBytes;
    this.tokens = burstBytes;
    this.last = now;
  }

  /** Takes `bytes`; returns how many milliseconds to wait before reading more (0: go on). */
  take(bytes: number, now = performance.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }
}
