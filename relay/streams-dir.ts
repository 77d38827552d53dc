// Watches a pool relay's --streams-dir: one subfolder per stream (relay/stream-folder.ts). The
// folder itself and each subfolder are watched (a Kubernetes Secret volume swaps a `..data`
// symlink inside the subfolder), events are debounced per subfolder, and a slow poll backs up
// fs.watch, which misses events on some filesystems. A subfolder is read again only when its
// files' stamp changed: the poll of 10,000 streams is 30,000 stat calls, not 30,000 reads.
// After the first scan, checks run from a queue a few milliseconds at a time: 10,000 folders
// arriving at once must not stall the sessions already served (their keepalive pings).
import { type FSWatcher, readdirSync, watch } from "node:fs";
import { join } from "node:path";
import { folderStamp } from "./stream-folder.ts";

export interface StreamsDirHandlers {
  /** A subfolder appeared or its files changed (the stamp differs from the last one seen). */
  changed(id: string, path: string): void;
  /** A subfolder is gone. */
  removed(id: string): void;
  /** The folder itself cannot be listed: said once per distinct error. */
  unreadable(message: string): void;
}

export interface StreamsDirWatch {
  close(): void;
}

/** Subfolders that hold a stream: hidden names are the writer's work in progress. */
const isStream = (name: string) => !name.startsWith(".");

export function watchStreamsDir(
  dir: string,
  h: StreamsDirHandlers,
  o: { debounceMs?: number; pollMs?: number } = {},
): StreamsDirWatch {
  const stamps = new Map<string, string>();
  const watchers = new Map<string, FSWatcher | undefined>();
  const pending = new Map<string, NodeJS.Timeout>();
  let lastError = "";

  const check = (id: string) => {
    const path = join(dir, id);
    const stamp = folderStamp(path);
    if (stamp === undefined) {
      if (!stamps.has(id)) return;
      stamps.delete(id);
      watchers.get(id)?.close();
      watchers.delete(id);
      h.removed(id);
      return;
    }
    if (!watchers.has(id))
      watchers.set(
        id,
        watchFolder(path, () => soon(id)),
      );
    if (stamps.get(id) === stamp) return;
    stamps.set(id, stamp);
    h.changed(id, path);
  };
  const queue = new Set<string>();
  let draining = false;
  const drain = () => {
    const until = performance.now() + 10;
    for (const id of queue) {
      queue.delete(id);
      check(id);
      if (performance.now() > until) break;
    }
    draining = queue.size > 0;
    if (draining) setImmediate(drain);
  };
  const enqueue = (id: string) => {
    queue.add(id);
    if (!draining) setImmediate(drain);
    draining = true;
  };
  const soon = (id: string) => {
    clearTimeout(pending.get(id));
    const t = setTimeout(() => {
      pending.delete(id);
      enqueue(id);
    }, o.debounceMs ?? 200);
    t.unref();
    pending.set(id, t);
  };
  /** `now`: at start, everything at once (nothing is served yet); later, through the queue. */
  const scan = (now = false) => {
    let names: string[];
    try {
      names = readdirSync(dir).filter(isStream);
    } catch (err) {
      const message = (err as Error).message;
      if (message !== lastError) h.unreadable(message);
      lastError = message;
      return;
    }
    lastError = "";
    const present = new Set(names);
    const visit = now ? check : enqueue;
    for (const id of [...stamps.keys()]) if (!present.has(id)) visit(id);
    for (const id of names) visit(id);
  };

  scan(true);
  const top = watchFolder(dir, (name) => {
    if (!name) scan();
    else if (isStream(name)) soon(name);
  });
  const poll = setInterval(() => scan(), o.pollMs ?? 30_000);
  poll.unref();
  return {
    close: () => {
      clearInterval(poll);
      queue.clear();
      top?.close();
      for (const w of watchers.values()) w?.close();
      for (const t of pending.values()) clearTimeout(t);
    },
  };
}

/** fs.watch, or nothing where inotify is unavailable (the poll alone then). */
function watchFolder(path: string, onEvent: (name: string | null) => void): FSWatcher | undefined {
  try {
    const w = watch(path, { persistent: false }, (_event, name) => onEvent(name));
    w.on("error", () => w.close());
    return w;
  } catch {
    return undefined;
  }
}
