// Fuzz target: option parsing (runtime/options.ts, option-text.ts) for every command's specs
// (cli/option-specs.ts), from argv and DEVICESTREAMS_* variables. Whatever is given, the parser
// answers with typed values or a DS_USAGE error; values it accepts, written back as flags
// (toArgv, how the operator starts a relay), read back the same.
import assert from "node:assert/strict";
import fc from "fast-check";
import { commandOptionSpecs } from "../../cli/option-specs.ts";
import { formatDuration, parseDuration } from "../../runtime/duration.ts";
import { DeviceStreamsError } from "../../runtime/errors.ts";
import { envName } from "../../runtime/option-text.ts";
import { type OptionSpec, type OptionSpecs, readCommandLine, toArgv } from "../../runtime/options.ts";
import { fuzz, fuzzTimeoutMs } from "./harness.ts";

const commands = Object.keys(commandOptionSpecs);

/** Decimal digits, 1 to `max` of them (not fc.stringMatching: far slower to draw from here). */
const digits = (max: number) => fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: 1, maxLength: max });

const made = new Map<OptionSpec | undefined, fc.Arbitrary<string>>();
/** Text a user might write for an option of this kind, well-formed or nearly so, or anything. */
function valueFor(spec: OptionSpec | undefined): fc.Arbitrary<string> {
  // Made once per spec, not per draw.
  if (!made.has(spec)) made.set(spec, makeValue(spec));
  return made.get(spec)!;
}

function makeValue(spec: OptionSpec | undefined): fc.Arbitrary<string> {
  const near: fc.Arbitrary<string>[] = [fc.string({ maxLength: 12 }), fc.constantFrom("", "-", "--x", "0", " ")];
  switch (spec?.kind) {
    case "duration":
      near.push(
        fc
          .array(fc.tuple(digits(30), fc.constantFrom("", ".5", ".001"), fc.constantFrom("ms", "s", "m", "h")), {
            minLength: 1,
            maxLength: 3,
          })
          .map((parts) => parts.flat().join("")),
        fc.constantFrom("0", "1e3s", "1h-5m"),
      );
      break;
    case "integer":
      near.push(
        fc.integer().map(String),
        fc.tuple(fc.constantFrom("", "-"), digits(25)).map((p) => p.join("")),
        fc.constantFrom("1.5", "0x10", " 7 "),
      );
      break;
    case "address":
      near.push(
        fc
          .tuple(fc.constantFrom("", "127.0.0.1", "[::1]", "[fe80::1", "localhost", "a:b", "host.example"), digits(7))
          .map(([host, port]) => `${host}:${port}`),
        digits(6),
        fc.constantFrom(":0", "[::1]:8443", "host:", "a:b:1"),
      );
      break;
    case "string":
    case "list":
      if (spec.choices) {
        near.push(
          fc.constantFrom(...spec.choices),
          fc.array(fc.constantFrom(...spec.choices, "nope", "", " "), { maxLength: 4 }).map((v) => v.join(",")),
        );
      }
      break;
    case "boolean":
      near.push(fc.constantFrom("true", "false", "TRUE", "1"));
      break;
  }
  return fc.oneof(...near);
}

/** One argv entry: a known flag (`--flag=v`, `--flag v`, `-s`), a typo, a positional, `--`. */
function argvFor(specs: OptionSpecs): fc.Arbitrary<string[]> {
  const flags = Object.keys(specs);
  const known = fc.constantFrom(...flags).chain((flag) =>
    fc.oneof(
      valueFor(specs[flag]).map((v) => [`--${flag}=${v}`]),
      valueFor(specs[flag]).map((v) => [`--${flag}`, v]),
      fc.constant([`--${flag}`]),
      ...(specs[flag]!.short ? [valueFor(specs[flag]).map((v) => [`-${specs[flag]!.short}`, v])] : []),
    ),
  );
  const other = fc.oneof(
    fc.constantFrom(["--help"], ["-h"], ["--"], ["-"], ["--no-such-flag"], ["-Z"], ["--=x"]),
    fc.constantFrom(...flags).map((f) => [`--${f.slice(1)}`]),
    fc.string({ maxLength: 10 }).map((s) => [s]),
  );
  return fc
    .array(fc.oneof({ weight: 4, arbitrary: known }, { weight: 1, arbitrary: other }), { maxLength: 8 })
    .map((parts) => parts.flat());
}

const commandLine = fc.constantFrom(...commands).chain((command) => {
  const specs = commandOptionSpecs[command]!;
  const flags = Object.keys(specs);
  // Not fc.dictionary: its keys must be distinct, and a command with fewer flags than it wants hangs.
  const env = fc
    .shuffledSubarray(flags, { maxLength: 3 })
    .chain((names) => fc.tuple(...names.map((f) => valueFor(specs[f]).map((v) => [f, v] as const))))
    .map((pairs) => Object.fromEntries(pairs) as Record<string, string>);
  return fc.record({ command: fc.constant(command), argv: argvFor(specs), env });
});

function withEnv<T>(command: string, env: Record<string, string>, f: () => T): T {
  const names = Object.keys(env).map((flag) => [envName(command, flag), env[flag]!] as const);
  for (const [name, value] of names) process.env[name] = value;
  try {
    return f();
  } finally {
    for (const [name] of names) delete process.env[name];
  }
}

function checkValue(flag: string, spec: OptionSpec, v: unknown): void {
  if (v === undefined) return;
  const where = `--${flag} (${spec.kind}) = ${JSON.stringify(v)}`;
  switch (spec.kind) {
    case "duration":
      assert.ok(Number.isSafeInteger(v) && (v as number) >= 0, `${where}: not a whole number of ms`);
      assert.equal(parseDuration(formatDuration(v as number)), v, `${where}: its text does not read back`);
      break;
    case "integer":
      assert.ok(Number.isSafeInteger(v), where);
      if (spec.min !== undefined) assert.ok((v as number) >= spec.min, where);
      if (spec.max !== undefined) assert.ok((v as number) <= spec.max, where);
      break;
    case "boolean":
      assert.equal(typeof v, "boolean", where);
      break;
    case "list":
      assert.ok(Array.isArray(v), where);
      if (spec.choices) for (const item of v as string[]) assert.ok(spec.choices.includes(item), where);
      break;
    default:
      assert.equal(typeof v, "string", where);
      if (spec.kind === "string" && spec.choices) assert.ok(spec.choices.includes(v as string), where);
  }
}

describe("fuzz: option parsing", function () {
  this.timeout(fuzzTimeoutMs());

  it("answers any command line with typed values or DS_USAGE, and what it accepts reads back", () =>
    fuzz(
      "options",
      commandLine,
      ({ command, argv, env }) => {
        const specs = commandOptionSpecs[command]!;
        const cmd = { name: `devicestreams ${command}`, env: command };
        let parsed: ReturnType<typeof readCommandLine>;
        try {
          parsed = withEnv(command, env, () => readCommandLine(specs, argv, cmd));
        } catch (err) {
          assert.ok(err instanceof DeviceStreamsError, `threw ${(err as Error)?.stack ?? err}`);
          assert.equal(err.code, "DS_USAGE");
          assert.match(err.message, /(^|\s)--?\w|option|argument/, "a refusal names what it refuses");
          return;
        }
        if (parsed.help) return;
        const values = parsed.values as Record<string, unknown>;
        for (const [flag, spec] of Object.entries(specs)) checkValue(flag, spec, values[flag]);
        // Written back as flags, the values read the same (the operator starts relays this way).
        const given = Object.fromEntries(
          Object.entries(values).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0)),
        );
        const again = readCommandLine(specs, toArgv(specs, given as never), { ...cmd, env: undefined });
        for (const flag of Object.keys(given)) assert.deepEqual(again.values[flag], values[flag], `--${flag}`);
      },
      { shortRuns: 1_500 },
    ));

  it("reads any duration text as a whole number of ms that writes back, or refuses it", () =>
    fuzz(
      "durations",
      fc.oneof(
        fc.string({ maxLength: 20 }),
        fc.stringMatching(/^ ?(\d{1,400}(\.\d{1,20})?(ms|s|m|h)){1,4} ?$/),
        fc.constantFrom("0", "", "1e400h", "9".repeat(400)),
      ),
      (text) => {
        let ms: number;
        try {
          ms = parseDuration(text);
        } catch (err) {
          assert.ok(err instanceof Error);
          assert.match(err.message, /is not a duration|too long/);
          return;
        }
        assert.ok(Number.isSafeInteger(ms) && ms >= 0, `"${text}" read as ${ms}`);
        assert.equal(parseDuration(formatDuration(ms)), ms);
      },
      { shortRuns: 5_000 },
    ));
});
