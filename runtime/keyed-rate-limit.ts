// A token bucket per key (a source address, a device) in a bounded map. The least recently used
// key is evicted first when the map is full; an evicted key starts again with a full bucket, so
// `maxKeys` must be well above the callers expected within one refill of a bucket.

export interface KeyedRateLimit {
  /** Tokens added per minute to each key's bucket. */
  perMinute: number;
  /** Bucket size: attempts allowed at once after a quiet period. */
  burst: number;
  /** Keys remembered at most (10 000). */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class KeyedRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;

  constructor(limit: KeyedRateLimit) {
    this.perMs = limit.perMinute / 60_000;
    this.burst = limit.burst;
    this.maxKeys = limit.maxKeys ?? 10_000;
  }

  /** Takes one token for `key`; false (and nothing taken) when its bucket is empty. */
  take(key: string, now = Date.now()): boolean {
    const b = this.touch(key, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Gives back the token of an attempt that turned out legitimate. */
  refund(key: string, now = Date.now()): void {
    const b = this.buckets.get(key);
    if (b) b.tokens = Math.min(this.burst, this.refilled(b, now) + 1);
  }

  /** How long until `key` may try again (0: now). */
  retryAfterMs(key: string, now = Date.now()): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const missing = 1 - this.refilled(b, now);
    return missing <= 0 ? 0 : this.perMs > 0 ? Math.ceil(missing / this.perMs) : Number.POSITIVE_INFINITY;
  }

  get size(): number {
    return this.buckets.size;
  }

  private refilled(b: Bucket, now: number): number {
    return Math.min(this.burst, b.tokens + Math.max(0, now - b.at) * this.perMs);
  }

  private touch(key: string, now: number): Bucket {
    const old = this.buckets.get(key);
    const b = old ? { tokens: this.refilled(old, now), at: now } : { tokens: this.burst, at: now };
    // Map order is insertion order: delete and set again makes this key the most recently used.
    if (old) this.buckets.delete(key);
    else if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, b);
    return b;
  }
}
