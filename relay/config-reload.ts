// Picks up a changed relay.json while the relay runs. Kubernetes updates a mounted Secret by
// swapping a `..data` symlink in the file's folder, so the folder is watched (not the file, whose
// inode a swap replaces), events are debounced, and the file is re-read whole. fs.watch misses
// events on some filesystems (network, overlay), so a slow poll backs it up. A text equal to the
// last one seen is no change. What the new text means is the caller's: see `fixedFieldChanged`.
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { RelayLimits } from "./pairing.ts";
import { type StreamConfig, streamServices } from "./stream-config.ts";

export interface ConfigWatch {
  close(): void;
}

export function watchConfigFile(
  path: string,
  initialText: string,
  onChange: (text: string) => void,
  onReadError: (message: string) => void,
  o: { debounceMs?: number; pollMs?: number } = {},
): ConfigWatch {
  let last = initialText;
  let lastError = "";
  let debounce: NodeJS.Timeout | undefined;
  const check = () => {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      // Mid-swap, or gone: said once per distinct error, tried again at the next event or poll.
      const message = (err as Error).message;
      if (message !== lastError) onReadError(message);
      lastError = message;
      return;
    }
    lastError = "";
    if (text === last) return;
    last = text;
    onChange(text);
  };
  const soon = () => {
    clearTimeout(debounce);
    debounce = setTimeout(check, o.debounceMs ?? 200);
    debounce.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      // The file itself, or the symlink swap (`..data`, `..2024_...`) that replaces it.
      if (!name || name === basename(path) || name.startsWith("..")) soon();
    });
    watcher.on("error", () => watcher?.close());
  } catch {
    // No inotify here (limits, filesystem): the poll alone.
  }
  const poll = setInterval(check, o.pollMs ?? 10_000);
  poll.unref();
  return {
    close: () => {
      clearTimeout(debounce);
      clearInterval(poll);
      watcher?.close();
    },
  };
}

/**
 * Why `next` cannot replace `current` in a running relay, or undefined. `stream` names the relay
 * (logs, metrics, usage, the Pod), and its services were told to the attached agent, whose open
 * connections reach it: a different one is a different relay, started anew.
 */
export function fixedFieldChanged(current: StreamConfig, next: StreamConfig): string | undefined {
  for (const k of ["stream", "service"] as const) {
    if (current[k] !== next[k]) {
      return `${k} changed from ${JSON.stringify(current[k])} to ${JSON.stringify(next[k])}; it cannot change while the relay runs (restart the relay to serve another)`;
    }
  }
  const [was, now] = [streamServices(current).join(","), streamServices(next).join(",")];
  if (was !== now) {
    return `services changed from ${was} to ${now}; they cannot change while the relay runs (restart the relay to serve others)`;
  }
  if (JSON.stringify(current.device) !== JSON.stringify(next.device)) {
    return "device changed; the Device a stream is bound to cannot change while the relay runs";
  }
  return undefined;
}

/** The fields of relay.json that differ, for the log line of a reload. */
export function changedFields(current: StreamConfig, next: StreamConfig): string[] {
  const out: string[] = [];
  if (JSON.stringify(current.credentials) !== JSON.stringify(next.credentials)) out.push("credentials");
  if (current.expiresAt !== next.expiresAt) out.push("expiresAt");
  if (current.acceptSourceToken !== next.acceptSourceToken) out.push("acceptSourceToken");
  if (JSON.stringify(current.serverNames) !== JSON.stringify(next.serverNames)) out.push("serverNames");
  const keys = new Set([...Object.keys(current.limits ?? {}), ...Object.keys(next.limits ?? {})]);
  for (const k of keys) {
    const key = k as keyof NonNullable<StreamConfig["limits"]>;
    if (current.limits?.[key] !== next.limits?.[key]) out.push(`limits.${k}`);
  }
  return out;
}

/** The relay's limits: relay.json's `limits` where it sets one, the flag's value elsewhere. */
export function effectiveLimits(flags: RelayLimits, config: StreamConfig): RelayLimits {
  return { ...flags, ...config.limits };
}
