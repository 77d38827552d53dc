// The single executables (packaging/sea), built once per test run into a folder of their own:
// a build takes tens of seconds and ~130 MB, and the tests only run them.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SeaName } from "../../packaging/sea/build.ts";
import { removeOnExit } from "./child-process.ts";
import { runCommand } from "./command.ts";

const script = fileURLToPath(new URL("../../packaging/sea/build.ts", import.meta.url));
let dir: string | undefined;
const built = new Map<SeaName, Promise<string>>();

/** The folder every executable is built into (removed when the test process exits). */
export function seaDir(): string {
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), "ds-sea-"));
    removeOnExit(dir);
  }
  return dir;
}

/** The executable `name`, built on first use (in a child process: postject's output stays out of the report). */
export function seaBinary(name: SeaName): Promise<string> {
  let p = built.get(name);
  if (!p) {
    p = runCommand(process.execPath, [script, "--out", seaDir(), name], { timeoutMs: 300_000 }).then((r) => {
      if (r.code !== 0) throw new Error(`building ${name} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
      return r.stdout.trim();
    });
    built.set(name, p);
  }
  return p;
}
