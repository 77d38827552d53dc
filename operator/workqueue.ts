// A work queue with client-go's guarantees: a key is queued at most once however often it is
// added, never handed to two workers at once (an add while it is processing queues it again for
// after `done`), delayed adds keep the earliest time, and failed keys come back after a per-key
// exponential delay, bounded overall by a token bucket so that a broken API server is not hammered.
import { maxTimerMs } from "../runtime/long-timeout.ts";

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Overall retry rate (tokens per second) and burst. */
  qps?: number;
  burst?: number;
  now?: () => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly qps: number;
  private readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private tokensAt: number;
  private shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 200;
    this.maxDelayMs = opts.maxDelayMs ?? 5 * 60_000;
    this.qps = opts.qps ?? 10;
    this.burst = opts.burst ?? 100;
    this.now = opts.now ?? Date.now;
    this.tokens = this.burst;
    this.tokensAt = this.now();
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // requeued by done()
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    // Node fires a longer timer after 1 ms, which would reconcile the key in a loop; an early look
    // is harmless (the reconcile asks again for what is left).
    delayMs = Math.min(delayMs, maxTimerMs);
    const at = this.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Requeue after the key's backoff; returns the delay chosen. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const perKey = Math.min(this.baseDelayMs * 2 ** n, this.maxDelayMs);
    const delay = Math.max(perKey, this.bucketDelay());
    this.addAfter(key, delay);
    return delay;
  }

  /** Stop tracking a key's failures (after it succeeded or was dropped). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Next key to work on; undefined once shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  /** Keys waiting (not counting those processing or delayed). */
  get length(): number {
    return this.queue.length;
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  private bucketDelay(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.qps);
    this.tokensAt = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000);
  }
}
