// The routes file, read at start and again whenever it changes (a ConfigMap update swaps the file
// under its path). A file that no longer parses leaves the last good routes in place: a typo must
// not take down every route at once.
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { Logger } from "../runtime/log.ts";
import { parseRoutesFile, type Upstream } from "./routes.ts";

export function readRoutesFile(file: string): Map<string, Upstream> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read the routes file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseRoutesFile(text, file);
}

/** Calls `apply` with the file's routes after each change; returns the function that stops watching. */
export function watchRoutesFile(
  file: string,
  apply: (routes: Map<string, Upstream>) => void,
  failed: (err: unknown) => void,
  log: Logger,
  intervalMs = 2_000,
): () => void {
  // Polling stat (not inotify): it follows the symlink a ConfigMap volume swaps, and works on any filesystem.
  const onChange = (now: { mtimeMs: number; ino: number; size: number }, before: typeof now) => {
    if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size) return;
    try {
      const routes = readRoutesFile(file);
      apply(routes);
      log.info("routes file reloaded", { file, routes: routes.size });
    } catch (err) {
      failed(err);
      log.error("routes file not reloaded; keeping the last good routes", { file, err });
    }
  };
  watchFile(file, { interval: intervalMs, persistent: false }, onChange);
  return () => unwatchFile(file, onChange);
}
