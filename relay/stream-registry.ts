// The streams a relay serves, and which one a call reaches. Single-stream mode (--config) holds
// one and gives it every call whatever its TLS server name, as the relay always did; pool mode
// (--streams-dir) routes by the server name the client sent (SNI), through each stream's
// `serverNames`. A name is one stream's: a folder that claims another's is refused by the caller.
import type { ErrorCode } from "../runtime/error-codes.ts";
import type { StreamRuntime } from "./stream-runtime.ts";
import type { UsageReport } from "./usage.ts";

export class StreamRegistry {
  private readonly byId = new Map<string, StreamRuntime>();
  /** Server name to stream id. */
  private readonly byName = new Map<string, string>();
  private readonly routeByName: boolean;
  private readonly onCount: (n: number) => void;
  private readonly sampler: NodeJS.Timeout;

  /** `routeByName` false: one stream takes every call (single-stream mode). */
  constructor(o: { routeByName: boolean; onCount?: (streams: number) => void; sampleEveryMs?: number }) {
    this.routeByName = o.routeByName;
    this.onCount = o.onCount ?? (() => {});
    // One timer samples every stream's usage: 10,000 streams must not mean 10,000 timers.
    this.sampler = setInterval(() => {
      const now = Date.now();
      for (const s of this.byId.values()) s.usage.sample(now);
    }, o.sampleEveryMs ?? 1000);
    this.sampler.unref();
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): StreamRuntime | undefined {
    return this.byId.get(id);
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  /** Who holds `name` now, other than `id`: a folder may not take another stream's name. */
  nameTakenBy(name: string, id: string): string | undefined {
    const owner = this.byName.get(name);
    return owner !== id ? owner : undefined;
  }

  add(id: string, stream: StreamRuntime): void {
    this.byId.set(id, stream);
    this.index(id, stream);
    this.onCount(this.byId.size);
  }

  /** After a reload: the stream's server names may have changed. */
  reindex(id: string, previousNames: readonly string[]): void {
    const stream = this.byId.get(id);
    if (!stream) return;
    for (const n of previousNames) if (this.byName.get(n) === id) this.byName.delete(n);
    this.index(id, stream);
  }

  /** The stream leaves: its connections are reset with `code`, its names reach nothing. */
  remove(id: string, code: ErrorCode, message: string): StreamRuntime | undefined {
    const stream = this.byId.get(id);
    if (!stream) return undefined;
    this.byId.delete(id);
    for (const n of stream.config.serverNames ?? []) if (this.byName.get(n) === id) this.byName.delete(n);
    stream.end("shutdown", code, message);
    this.onCount(this.byId.size);
    return stream;
  }

  /** The stream a call on a TLS session for `serverName` reaches, or undefined. */
  route(serverName: string | undefined): StreamRuntime | undefined {
    if (!this.routeByName) return this.byId.values().next().value;
    const id = serverName ? this.byName.get(serverName.toLowerCase()) : undefined;
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** The id of the stream that `serverName` reaches (pool mode's SNI check), or undefined. */
  idFor(serverName: string): string | undefined {
    return this.byName.get(serverName.toLowerCase());
  }

  get connectionCount(): number {
    let n = 0;
    for (const s of this.byId.values()) n += s.pairing.connectionCount;
    return n;
  }

  all(): StreamRuntime[] {
    return [...this.byId.values()];
  }

  usage(): UsageReport[] {
    return this.all().map((s) => s.usage.report());
  }

  close(): void {
    clearInterval(this.sampler);
    for (const s of this.byId.values()) s.stopTimers();
  }

  private index(id: string, stream: StreamRuntime): void {
    for (const n of stream.config.serverNames ?? []) this.byName.set(n, id);
  }
}
