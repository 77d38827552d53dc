// Runs a reconcile function over a work queue, as controller-runtime does: N workers, one key in
// flight at a time per key, `requeueAfterMs` to look again later, an error to retry with per-key
// backoff, a TerminalError to give up until the object changes again. A leader-only component:
// it starts with every key queued, and queues every key again each resync period.
import { describeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { Component } from "./manager.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { WorkQueue } from "./workqueue.ts";

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export type Reconciler = (key: string) => Promise<ReconcileResult | undefined>;

/** An error that retrying cannot fix: logged, not retried. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TerminalError";
  }
}

export interface ControllerOptions {
  /** The `controller` and `queue` label of its metrics. */
  name: string;
  reconcile: Reconciler;
  workers: number;
  metrics: OperatorMetrics;
  log: Logger;
  /** Every key there is: queued at start and every resyncPeriodMs, to catch what no event announced. */
  keys: () => string[];
  resyncPeriodMs: number;
  /** Before the workers start (wait for caches, load what reconciles need); gives up when `signal` aborts. */
  prepare?: (signal: AbortSignal) => Promise<void>;
  /** After the workers have stopped: forget what only a leader keeps. */
  cleanup?: () => void;
}

export class Controller implements Component {
  readonly name: string;
  readonly leaderOnly = true;
  private readonly o: ControllerOptions;
  private readonly reconcile: Reconciler;
  private readonly metrics: OperatorMetrics;
  private readonly log: Logger;
  private queue: WorkQueue | undefined;
  private running: Promise<void>[] = [];
  private resync: NodeJS.Timeout | undefined;

  constructor(o: ControllerOptions) {
    this.o = o;
    this.name = o.name;
    this.reconcile = o.reconcile;
    this.metrics = o.metrics;
    this.log = o.log;
  }

  /** Ignored while stopped: a replica that does not lead does not queue work. */
  enqueue(key: string, afterMs = 0): void {
    if (!this.queue) return;
    this.queue.addAfter(key, afterMs);
    this.metrics.queueDepth.set({ queue: this.name }, this.queue.length);
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.queue) return;
    await this.o.prepare?.(signal);
    if (signal.aborted) return;
    const queue = new WorkQueue();
    this.queue = queue;
    this.running = Array.from({ length: this.o.workers }, () => this.work(queue));
    const keys = this.o.keys();
    for (const key of keys) this.enqueue(key);
    this.resync = setInterval(() => {
      for (const key of this.o.keys()) this.enqueue(key);
    }, this.o.resyncPeriodMs);
    this.resync.unref();
    this.log.info("reconciling", { controller: this.name, keys: keys.length, workers: this.o.workers });
  }

  /** Stops taking keys and waits for the reconciles in flight. */
  async stop(): Promise<void> {
    clearInterval(this.resync);
    const queue = this.queue;
    if (queue) {
      this.queue = undefined;
      queue.shutdown();
      await Promise.all(this.running);
      this.running = [];
      this.metrics.queueDepth.set({ queue: this.name }, 0);
    }
    this.o.cleanup?.();
  }

  private async work(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      this.metrics.queueDepth.set({ queue: this.name }, queue.length);
      const end = this.metrics.reconcileSeconds.startTimer({ controller: this.name });
      try {
        const result = await this.reconcile(key);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) {
          queue.addAfter(key, result.requeueAfterMs);
          this.metrics.reconciles.inc({ controller: this.name, result: "requeue" });
        } else {
          this.metrics.reconciles.inc({ controller: this.name, result: "success" });
        }
      } catch (err) {
        this.metrics.reconciles.inc({ controller: this.name, result: "error" });
        if (err instanceof TerminalError) {
          queue.forget(key);
          this.log.error("reconcile failed; not retrying until the object changes", { key, error: err.message });
        } else {
          const delay = queue.addRateLimited(key);
          this.metrics.retries.inc({ queue: this.name });
          const attempt = queue.retries(key);
          const fields = { key, attempt, retryInMs: delay, error: describeError(err) };
          if (attempt > 3) this.log.warn("reconcile failed; retrying", fields);
          else this.log.info("reconcile failed; retrying", fields);
        }
      } finally {
        end();
        queue.done(key);
      }
    }
  }
}
