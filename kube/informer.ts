// A list-watch cache of one resource. client-node's ListWatch relists on 410 Gone but stops on any
// other error and asks for no bookmarks, so this one owns the loop: list (paged), watch with
// bookmarks and a server-side timeout, resume from the last resourceVersion, relist when it has
// expired, and back off with jitter on errors. It never gives up; `synced` turns true after the
// first complete list and stays true (the cache is served, possibly stale, during an outage).
import { setTimeout as sleep } from "node:timers/promises";
import { Backoff } from "../runtime/backoff.ts";
import { describeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import type { KubeList, KubeObject } from "./types.ts";

export type InformerEvent = "add" | "update" | "delete";
export type Handler<T> = (event: InformerEvent, obj: T, old?: T) => void;

export interface InformerOptions<T extends KubeObject = KubeObject> {
  name: string;
  client: KubeClient;
  /** Collection path, e.g. /api/v1/pods (all namespaces). */
  path: string;
  labelSelector?: string;
  log: Logger;
  pageSize?: number;
  backoff?: Backoff;
  /** Called whenever the watch had to be restarted after an error. */
  onRestart?: (reason: string) => void;
  /** Called after every complete list (the first, and each after an expired resourceVersion). */
  onRelist?: () => void;
  /** Added to the log line when listing answers 404 (for a CRD: how to install it). */
  notFoundHint?: string;
  /**
   * What the cache keeps of each object as it arrives (as controller-runtime's cache transforms):
   * only what readers use, so that thousands of objects stay small. managedFields are always dropped.
   */
  transform?: (obj: T) => T;
}

export class Informer<T extends KubeObject> {
  readonly name: string;
  private readonly opts: InformerOptions<T>;
  private readonly store = new Map<string, T>();
  /** Keys by namespace, so that list(namespace) does not walk every object. */
  private readonly byNamespace = new Map<string, Set<string>>();
  private readonly indexes = new Map<string, { of: (obj: T) => string | undefined; keys: Map<string, Set<string>> }>();
  private readonly handlers: Handler<T>[] = [];
  private readonly backoff: Backoff;
  private resourceVersion = "";
  private stopped = false;
  private abort = new AbortController();
  private current: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private syncWaiters: Array<() => void> = [];
  synced = false;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    this.name = opts.name;
    this.backoff = opts.backoff ?? new Backoff({ initialMs: 500, maxMs: 30_000, stableMs: 60_000 });
  }

  on(handler: Handler<T>): void {
    this.handlers.push(handler);
  }

  get(namespace: string, name: string): T | undefined {
    return this.store.get(`${namespace}/${name}`);
  }

  list(namespace?: string): T[] {
    if (namespace === undefined) return [...this.store.values()];
    return this.lookup(this.byNamespace.get(namespace));
  }

  /** Keeps the objects findable by `of(obj)` (e.g. a stream's Device): see byIndex. Call before start. */
  addIndex(name: string, of: (obj: T) => string | undefined): void {
    this.indexes.set(name, { of, keys: new Map() });
  }

  /** The objects whose index `name` gives `value`. */
  byIndex(name: string, value: string): T[] {
    return this.lookup(this.indexes.get(name)?.keys.get(value));
  }

  private lookup(keys: Set<string> | undefined): T[] {
    const out: T[] = [];
    for (const k of keys ?? []) {
      const obj = this.store.get(k);
      if (obj) out.push(obj);
    }
    return out;
  }

  start(): void {
    this.loop ??= this.run();
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.current?.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { log, name } = this.opts;
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.relist();
        const started = Date.now();
        await this.watchOnce();
        // A clean end (server-side timeout) resumes at once from the last resourceVersion; one
        // that ended at once (a proxy closing connections) must not become a tight loop.
        if (Date.now() - started < 1000) await sleep(this.backoff.next(), undefined, { signal: this.abort.signal });
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof KubeApiError && err.status === 410) {
          log.info("watch expired; listing again", { informer: name });
          this.resourceVersion = "";
          continue;
        }
        const delay = this.backoff.next();
        const hint = err instanceof KubeApiError && err.status === 404 ? this.opts.notFoundHint : undefined;
        log.warn("list/watch failed; retrying", { informer: name, error: describeError(err), hint, retryInMs: delay });
        this.opts.onRestart?.(err instanceof KubeApiError ? `http_${err.status}` : "error");
        await sleep(delay, undefined, { signal: this.abort.signal }).catch(() => undefined);
      }
    }
  }

  private async relist(): Promise<void> {
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let rv = "";
    do {
      const page = await this.opts.client.list<KubeList<T>>(this.opts.path, {
        limit: this.opts.pageSize ?? 500,
        continue: continueToken,
        labelSelector: this.opts.labelSelector,
      });
      for (const item of page.items) fresh.set(keyFor(item), this.keep(item));
      continueToken = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion ?? "";
    } while (continueToken);
    // Replace, telling handlers what changed while we were not watching.
    for (const [key, old] of this.store) if (!fresh.has(key)) this.remove(key, old);
    for (const obj of fresh.values()) this.upsert(obj);
    this.resourceVersion = rv;
    this.opts.onRelist?.();
    if (!this.synced) {
      this.synced = true;
      this.opts.log.info("cache synced", { informer: this.opts.name, objects: this.store.size });
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let gone = false;
      const query = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        // As client-go: 5-10 min, spread so that replicas do not reconnect in step.
        timeoutSeconds: 300 + Math.floor(Math.random() * 300),
        labelSelector: this.opts.labelSelector,
      };
      const onEvent = (type: string, obj: unknown) => {
        if (type === "ERROR") {
          const status = obj as { code?: number; message?: string };
          if (status.code === 410) gone = true;
          return;
        }
        const o = obj as T;
        if (o?.metadata?.resourceVersion) this.resourceVersion = o.metadata.resourceVersion;
        if (type === "ADDED" || type === "MODIFIED") this.upsert(this.keep(o));
        else if (type === "DELETED") this.remove(keyFor(o), o);
        this.backoff.connected(); // events flowing: the connection is healthy
      };
      const done = (err: unknown) => {
        this.current = undefined;
        if (gone) return reject(new KubeApiError(410, "Expired", "resourceVersion too old"));
        const e = err as { statusCode?: number; name?: string; message?: string } | null;
        if (!e) return resolve();
        // client-node aborts a watch that was silent for 30 s; that is not an error.
        if (e.name === "TimeoutError") return resolve();
        reject(new KubeApiError(e.statusCode ?? 0, "WatchFailed", `watch ${this.opts.path}: ${e.message ?? e}`));
      };
      this.opts.client.watch(this.opts.path, query, onEvent, done).then(
        (controller) => {
          this.current = controller;
          if (this.stopped) controller.abort();
        },
        (err: unknown) => reject(err),
      );
    });
  }

  private upsert(obj: T): void {
    const key = keyFor(obj);
    const old = this.store.get(key);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.store.set(key, obj);
    if (old) this.unindex(key, old);
    this.index(key, obj);
    this.emit(old ? "update" : "add", obj, old);
  }

  private remove(key: string, obj: T): void {
    const old = this.store.get(key);
    if (!old) return;
    this.store.delete(key);
    this.unindex(key, old);
    this.emit("delete", old ?? obj);
  }

  private keep(obj: T): T {
    strip(obj);
    return this.opts.transform ? this.opts.transform(obj) : obj;
  }

  private index(key: string, obj: T): void {
    add(this.byNamespace, obj.metadata.namespace ?? "", key);
    for (const { of, keys } of this.indexes.values()) {
      const v = of(obj);
      if (v !== undefined) add(keys, v, key);
    }
  }

  private unindex(key: string, obj: T): void {
    drop(this.byNamespace, obj.metadata.namespace ?? "", key);
    for (const { of, keys } of this.indexes.values()) {
      const v = of(obj);
      if (v !== undefined) drop(keys, v, key);
    }
  }

  private emit(event: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(event, obj, old);
      } catch (err) {
        this.opts.log.error("informer handler threw", { informer: this.opts.name, error: describeError(err) });
      }
    }
  }
}

function add(index: Map<string, Set<string>>, value: string, key: string): void {
  const keys = index.get(value);
  if (keys) keys.add(key);
  else index.set(value, new Set([key]));
}

function drop(index: Map<string, Set<string>>, value: string, key: string): void {
  const keys = index.get(value);
  if (!keys) return;
  keys.delete(key);
  if (keys.size === 0) index.delete(value);
}

function keyFor(obj: KubeObject): string {
  return `${obj.metadata.namespace ?? ""}/${obj.metadata.name ?? ""}`;
}

// managedFields are large and never read from the cache; dropping them halves its memory.
function strip<T extends KubeObject>(obj: T): T {
  if (obj.metadata.managedFields) delete obj.metadata.managedFields;
  return obj;
}
