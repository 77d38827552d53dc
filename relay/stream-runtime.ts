// One stream as a relay serves it: its config, limits, pairing, user access, usage and lifetime.
// A single-stream relay (--config) holds one; a pool (--streams-dir) one per folder. A changed
// relay.json applies here (limits and credentials at once; what names the stream is refused).
import type { ErrorCode } from "../runtime/error-codes.ts";
import type { Logger } from "../runtime/log.ts";
import { setLongTimeout } from "../runtime/long-timeout.ts";
import { changedFields, effectiveLimits, fixedFieldChanged } from "./config-reload.ts";
import type { RelayMetrics } from "./metrics.ts";
import { Pairing, type RelayLimits } from "./pairing.ts";
import type { CloseReason } from "./splice.ts";
import type { StreamConfig } from "./stream-config.ts";
import { UsageTracker } from "./usage.ts";
import { type AccessReviewer, UserAccess } from "./user-access.ts";

export interface StreamRuntimeOptions {
  config: StreamConfig;
  /** The relay's flags; relay.json's `limits` override them. */
  flagLimits: RelayLimits;
  /** End the stream this long after it started here (0: never). */
  lifetimeMs: number;
  accessTtlMs: number;
  /** Asks the operator about users' Kubernetes tokens; none: the source token only (static). */
  reviewer?: AccessReviewer;
  metrics: RelayMetrics;
  log: Logger;
}

export type ReloadResult = { ok: true; changed: string[] } | { ok: false; reason: string };

export class StreamRuntime {
  config: StreamConfig;
  readonly pairing: Pairing;
  readonly users: UserAccess;
  readonly usage: UsageTracker;
  private limits: RelayLimits;
  private readonly o: StreamRuntimeOptions;
  private readonly lifetimeEnd: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private cancelEnd = () => {};

  constructor(o: StreamRuntimeOptions) {
    this.o = o;
    this.config = o.config;
    this.limits = effectiveLimits(o.flagLimits, o.config);
    this.lifetimeEnd = o.lifetimeMs ? Date.now() + o.lifetimeMs : Number.POSITIVE_INFINITY;
    this.pairing = new Pairing(o.config, this.limits, o.metrics, o.log);
    this.users = new UserAccess({
      reviewer: o.reviewer,
      ttlMs: o.accessTtlMs,
      stream: () => this.config.stream,
      metrics: o.metrics,
      log: o.log,
    });
    this.usage = new UsageTracker(o.config.stream, this.pairing);
    this.setTimers();
  }

  get stream(): string {
    return this.config.stream;
  }

  /** A changed relay.json: applied, or refused (the stream keeps the config it has). */
  reload(next: StreamConfig): ReloadResult {
    const fixed = fixedFieldChanged(this.config, next);
    if (fixed) return { ok: false, reason: fixed };
    const changed = changedFields(this.config, next);
    this.config = next;
    this.limits = effectiveLimits(this.o.flagLimits, next);
    this.pairing.setLimits(this.limits);
    this.setTimers();
    return { ok: true, changed };
  }

  /** Over (removed, shut down): every connection reset with `code`, later calls refused. */
  end(reason: CloseReason, code: ErrorCode, message: string): void {
    this.stopTimers();
    this.pairing.end(reason, code, message);
  }

  stopTimers(): void {
    clearInterval(this.sweepTimer);
    this.cancelEnd();
  }

  // Both timers follow the current config: a reload sets them again.
  private setTimers(): void {
    this.stopTimers();
    const idle = this.limits.idleTimeoutMs;
    if (idle) this.sweepTimer = setInterval(() => this.pairing.sweepIdle(), Math.max(250, Math.min(idle / 4, 5000)));
    this.sweepTimer?.unref();
    this.cancelEnd = () => {};
    const expires = this.config.expiresAt ? Date.parse(this.config.expiresAt) : Number.POSITIVE_INFINITY;
    const endAt = Math.min(this.lifetimeEnd, expires);
    if (!Number.isFinite(endAt)) return;
    // A long timer: a stream may live 720h, beyond what one Node timer waits.
    this.cancelEnd = setLongTimeout(
      () => {
        this.o.log.info("stream lifetime reached; ending every connection");
        this.pairing.end(
          "lifetime",
          "DS_STREAM_EXPIRED",
          `stream ${this.config.stream} reached its maximum lifetime; open a new stream`,
        );
      },
      endAt - Date.now(),
      { unref: true },
    );
  }
}
