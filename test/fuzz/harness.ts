// Runs one fuzz target with fast-check: a short, seeded run in `npm test` (DEVICESTREAMS_FUZZ
// unset), a timed one in `npm run fuzz` (DEVICESTREAMS_FUZZ=long, DEVICESTREAMS_FUZZ_SECONDS per
// target). Every run replays the target's corpus first (test/fuzz/corpus/<target>/*.json: inputs
// that once failed, kept as regressions, and hand-picked edge cases); a failing input, shrunk, is
// written there, so the next run replays it. docs/resilience/fuzzing.md says why fast-check and
// not a coverage-guided fuzzer.
import { createHash, randomInt } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";

const corpusRoot = join(dirname(fileURLToPath(import.meta.url)), "corpus");
const long = process.env.DEVICESTREAMS_FUZZ === "long";
const seconds = Number(process.env.DEVICESTREAMS_FUZZ_SECONDS ?? "300");

/** Bytes survive JSON as `{"$bytes": base64}`, so that byte-level inputs can sit in the corpus. */
function toJson(value: unknown): string {
  return `${JSON.stringify(
    value,
    function (key, v) {
      const raw = (this as Record<string, unknown>)[key];
      return raw instanceof Uint8Array ? { $bytes: Buffer.from(raw).toString("base64") } : v;
    },
    2,
  )}\n`;
}

function fromJson(text: string): unknown {
  return JSON.parse(text, (_k, v) =>
    v && typeof v === "object" && typeof v.$bytes === "string" ? Buffer.from(v.$bytes, "base64") : v,
  );
}

export function corpus<T>(target: string): T[] {
  const dir = join(corpusRoot, target);
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
  return files.sort().map((f) => fromJson(readFileSync(join(dir, f), "utf8")) as T);
}

function keep(target: string, input: unknown): string {
  const text = toJson(input);
  const file = join(corpusRoot, target, `crash-${createHash("sha256").update(text).digest("hex").slice(0, 16)}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

export interface FuzzOptions {
  /** Runs of the short (npm test) mode: a few seconds' worth. */
  shortRuns: number;
  /** A single run that takes longer than this fails (a hang is a finding too). */
  runTimeoutMs?: number;
}

/**
 * Checks `check` on the corpus, then on generated inputs. The seed is logged (and taken from
 * DEVICESTREAMS_FUZZ_SEED when set), so any run can be repeated exactly.
 */
export async function fuzz<T>(
  target: string,
  arb: fc.Arbitrary<T>,
  check: (input: T) => void | Promise<void>,
  o: FuzzOptions,
): Promise<void> {
  const seed = Number(process.env.DEVICESTREAMS_FUZZ_SEED ?? randomInt(2 ** 31 - 1));
  const examples = corpus<T>(target);
  let executions = 0;
  const started = performance.now();
  const property = fc.asyncProperty(arb, async (input) => {
    executions++;
    await check(input);
  });
  const details = await fc.check(property, {
    seed,
    examples: examples.map((e) => [e]),
    numRuns: long ? Number.MAX_SAFE_INTEGER : o.shortRuns,
    interruptAfterTimeLimit: long ? seconds * 1000 : undefined,
    markInterruptAsFailure: false,
    timeout: o.runTimeoutMs,
    path: process.env.DEVICESTREAMS_FUZZ_PATH,
  });
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  const summary = `fuzz ${target}: ${executions} executions (${examples.length} from the corpus) in ${secs} s, seed ${seed}`;
  console.log(`      ${summary}`);
  if (!details.failed) return;
  const input = details.counterexample?.[0];
  const saved = input === undefined ? "" : `\nthe input is kept in ${keep(target, input)}`;
  throw new Error(
    `${summary}: failed\n${fc.defaultReportMessage(details)}${saved}\n` +
      `repeat with DEVICESTREAMS_FUZZ_SEED=${seed} DEVICESTREAMS_FUZZ_PATH=${details.counterexamplePath ?? ""}`,
    { cause: details.errorInstance },
  );
}

/** A mocha timeout that fits the mode: the long run's time per target plus its slowest run. */
export function fuzzTimeoutMs(): number {
  return long ? (seconds + 120) * 1000 : 60_000;
}
