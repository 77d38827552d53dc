// Jittered exponential backoff, after grpc-js's backoff-timeout (1 s, x1.6, 20 % jitter,
// 120 s cap), that resets after a grace period of stable connection (as cloudflared does).
import { setTimeout as sleep } from "node:timers/promises";

export interface BackoffOptions {
  initialMs?: number;
  multiplier?: number;
  jitter?: number;
  maxMs?: number;
  /** A connection that lasted this long resets the backoff to its initial delay. */
  stableMs?: number;
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly multiplier: number;
  private readonly jitter: number;
  private readonly maxMs: number;
  private readonly stableMs: number;
  private readonly random: () => number;
  private nextBaseMs: number;
  private connectedAt: number | undefined;
  attempts = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 1000;
    this.multiplier = options.multiplier ?? 1.6;
    this.jitter = options.jitter ?? 0.2;
    this.maxMs = options.maxMs ?? 120_000;
    this.stableMs = options.stableMs ?? 30_000;
    this.random = options.random ?? Math.random;
    this.nextBaseMs = this.initialMs;
  }

  /** Call when a connection is established. */
  connected(now = Date.now()): void {
    this.connectedAt = now;
  }

  /** Delay before the next attempt; call after a failure or a lost connection. */
  next(now = Date.now()): number {
    if (this.connectedAt !== undefined && now - this.connectedAt >= this.stableMs) this.reset();
    this.connectedAt = undefined;
    const base = this.nextBaseMs;
    this.nextBaseMs = Math.min(base * this.multiplier, this.maxMs);
    this.attempts++;
    const spread = base * this.jitter;
    return Math.max(0, Math.round(base - spread + this.random() * 2 * spread));
  }

  reset(): void {
    this.nextBaseMs = this.initialMs;
    this.attempts = 0;
  }
}

/**
 * Calls `attempt` until it succeeds, waiting the backoff's delay after each failure (reported to
 * `onFailure` first); gives up, returning undefined, once `signal` aborts.
 */
export async function retry<T>(
  attempt: () => Promise<T>,
  signal: AbortSignal,
  onFailure: (err: unknown, retryInMs: number) => void,
  backoff = new Backoff({ initialMs: 500, maxMs: 15_000 }),
): Promise<T | undefined> {
  while (!signal.aborted) {
    try {
      return await attempt();
    } catch (err) {
      if (signal.aborted) break;
      const delay = backoff.next();
      onFailure(err, delay);
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }
  return undefined;
}
