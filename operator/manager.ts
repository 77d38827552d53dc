// Starts the operator's components in order and stops them in reverse, as controller-runtime's
// manager does. Components marked leaderOnly run only while this replica holds the lease: they
// start, in order, when it is won and stop, in reverse, when it is lost or on shutdown; the others
// (caches, endpoints, hub) run on every replica.
import { describeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";

export interface Component {
  readonly name: string;
  /** Runs only on the leader (controller-runtime's NeedLeaderElection). */
  readonly leaderOnly?: boolean;
  /**
   * Returns once started. `signal` aborts before the manager stops the component, so that a start
   * still waiting (for caches, or retrying) gives up.
   */
  start(signal: AbortSignal): void | Promise<void>;
  /** Also called after a start that gave up because `signal` aborted. */
  stop(): void | Promise<void>;
}

/** Campaigns for the lease; calls the manager's `lead` and `unlead` (see LeaderElector). */
export interface Elector {
  start(): void;
  /** Stops campaigning; a leader first awaits `unlead`, then releases the lease. */
  stop(): Promise<void>;
}

export interface ManagerOptions {
  log: Logger;
  /** Makes the elector; without one this replica leads as soon as it has started. */
  elector?: (lead: () => void, unlead: () => Promise<void>) => Elector;
  /**
   * A leader-only component failed to start; the others were stopped. controller-runtime's
   * manager exits then, and `devicestreams operator` does too, releasing the lease on the way.
   */
  onLeaderFailure?: (err: unknown) => void;
}

/** Resolves with `promise`, or with undefined as soon as `signal` aborts. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export class Manager {
  private readonly o: ManagerOptions;
  private readonly components: Component[] = [];
  private readonly running: Component[] = [];
  private leaderRunning: Component[] = [];
  private readonly stopping = new AbortController();
  /** Aborted when the current leadership ends, even while its start is still queued. */
  private term: AbortController | undefined;
  /** Leadership starts and stops run one after another, never interleaved. */
  private transitions = Promise.resolve();
  private elector: Elector | undefined;
  private stopped: Promise<void> | undefined;
  private leading = false;

  constructor(o: ManagerOptions) {
    this.o = o;
  }

  add(...components: Component[]): this {
    this.components.push(...components);
    return this;
  }

  /** True once every leader-only component has started, until leadership ends. */
  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Starts every component that runs on all replicas, in order, then campaigns. If one fails, those
   * already started are stopped and the error is thrown.
   */
  async start(): Promise<void> {
    for (const c of this.components.filter((x) => !x.leaderOnly)) {
      try {
        await c.start(this.stopping.signal);
      } catch (err) {
        this.o.log.error("cannot start; stopping what started", { component: c.name, error: describeError(err) });
        this.stopping.abort();
        await this.stopAll(this.running.splice(0));
        throw err;
      }
      this.running.push(c);
    }
    this.elector = this.o.elector?.(
      () => void this.lead(),
      () => this.unlead(),
    );
    if (this.elector) this.elector.start();
    else void this.lead();
  }

  /** Stops leading (if it does), then everything else in reverse order. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping.abort();
      // The elector awaits unlead before it releases the lease, so no successor overlaps.
      await this.elector?.stop();
      await this.unlead();
      await this.stopAll(this.running.splice(0));
    })();
    return this.stopped;
  }

  private lead(): Promise<void> {
    const term = new AbortController();
    this.term = term;
    return this.transition(async () => {
      const leaderOnly = this.components.filter((c) => c.leaderOnly);
      for (const c of leaderOnly) {
        if (term.signal.aborted || this.stopping.signal.aborted) return;
        try {
          await c.start(term.signal);
        } catch (err) {
          this.o.log.error("a leader-only component cannot start; stopping the others", {
            component: c.name,
            error: describeError(err),
          });
          term.abort();
          await this.stopAll(this.leaderRunning.splice(0));
          this.o.onLeaderFailure?.(err);
          return;
        }
        this.leaderRunning.push(c);
      }
      this.leading = !term.signal.aborted;
    });
  }

  private unlead(): Promise<void> {
    this.term?.abort();
    return this.transition(async () => {
      this.leading = false;
      await this.stopAll(this.leaderRunning.splice(0));
    });
  }

  private transition(step: () => Promise<void>): Promise<void> {
    this.transitions = this.transitions.then(step).catch((err: unknown) => {
      this.o.log.error("leadership transition failed", { error: describeError(err) });
    });
    return this.transitions;
  }

  /** In reverse order; one that fails to stop does not keep the others running. */
  private async stopAll(started: Component[]): Promise<void> {
    for (const c of started.reverse()) {
      try {
        await c.stop();
      } catch (err) {
        this.o.log.warn("cannot stop cleanly", { component: c.name, error: describeError(err) });
      }
    }
  }
}
