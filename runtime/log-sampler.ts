// At most one log line per key per interval, so that something anyone on the network can cause
// (a refused call, say) cannot flood the log. The next line after a quiet interval says how many
// were left out; a metric, not the log, is the place to count every event.

export interface LogSamplerOptions {
  /** Length of the window in which a key gets one line (10 s). */
  intervalMs?: number;
  /** Keys remembered at most (1 000); the least recently logged is forgotten first. */
  maxKeys?: number;
}

interface Window {
  at: number;
  suppressed: number;
}

export class LogSampler {
  private readonly windows = new Map<string, Window>();
  private readonly intervalMs: number;
  private readonly maxKeys: number;

  constructor(o: LogSamplerOptions = {}) {
    this.intervalMs = o.intervalMs ?? 10_000;
    this.maxKeys = o.maxKeys ?? 1_000;
  }

  /**
   * Whether an event of `key` may be logged now: undefined when it is to be left out, else the
   * number of events of `key` left out since the last line (0 for none).
   */
  take(key: string, now = Date.now()): number | undefined {
    const w = this.windows.get(key);
    if (w && now - w.at < this.intervalMs) {
      w.suppressed++;
      return undefined;
    }
    // Map order is insertion order: delete and set again makes this key the most recently logged.
    if (w) this.windows.delete(key);
    else if (this.windows.size >= this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
    this.windows.set(key, { at: now, suppressed: 0 });
    return w?.suppressed ?? 0;
  }

  get size(): number {
    return this.windows.size;
  }
}
