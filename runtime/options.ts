// Flags, environment and defaults for every command, in one shape: each option names its kind
// (what it holds), its default and whether it is secret; parseOptions reads flags, then the
// DEVICESTREAMS_<COMMAND>_<FLAG> variable, then the default, and turns the text into a typed value
// once, here, so that a bad value is refused at start with the flag's name and what it expects.
import { parseArgs } from "node:util";
import { formatDuration, parseDuration } from "./duration.ts";
import { DeviceStreamsError } from "./errors.ts";
import { splitHostPort } from "./http-endpoints.ts";
import { closestFlag, envName, expected, usage } from "./option-text.ts";

interface BaseSpec {
  /** Markdown allowed (backticks); --help prints it without them. */
  description: string;
  /** As a user would write it; shown in --help and the README's tables. */
  default?: string;
  /** Missing or empty is refused at start. */
  required?: boolean;
  /** Redacted in the startup log line. */
  secret?: boolean;
  short?: string;
  /** What --help writes after the flag, when the kind's own word says too little. */
  placeholder?: string;
}

export type OptionSpec =
  | (BaseSpec & { kind: "string"; choices?: readonly string[] })
  | (BaseSpec & { kind: "file" })
  | (BaseSpec & { kind: "duration" })
  | (BaseSpec & { kind: "integer"; min?: number; max?: number })
  | (BaseSpec & { kind: "boolean" })
  /** Repeatable, and each value may be a comma list; the values are joined. With `choices`, each
   * value must be one of them and at least one must be given. */
  | (BaseSpec & { kind: "list"; choices?: readonly string[] })
  /** host:port, [v6]:port or :port. `defaultHost` lets a bare port mean that host. `emptyDisables`:
   * an empty value turns the feature off (the value is then undefined despite the default). */
  | (BaseSpec & { kind: "address"; defaultHost?: string; emptyDisables?: boolean });

export type OptionSpecs = Record<string, OptionSpec>;

interface KindValues {
  string: string;
  file: string;
  duration: number;
  integer: number;
  boolean: boolean;
  list: string[];
  address: string;
}
/** What one option parses to: a choice's own union (a list of them), else its kind's type (durations in ms). */
export type OptionValue<O extends OptionSpec> = O extends { choices: readonly (infer C extends string)[] }
  ? O extends { kind: "list" }
    ? C[]
    : C
  : KindValues[O["kind"]];
type AlwaysSet<O> = O extends { kind: "boolean" | "list" }
  ? true
  : O extends { emptyDisables: true }
    ? false
    : O extends { required: true } | { default: string }
      ? true
      : false;
export type OptionValues<S extends OptionSpecs> = {
  [K in keyof S]: AlwaysSet<S[K]> extends true ? OptionValue<S[K]> : OptionValue<S[K]> | undefined;
};

/** Where a value came from, for messages: `--idle-timeout` or `--idle-timeout (from DEVICESTREAMS_…)`. */
type Source = { flag: string; env?: string; isDefault?: boolean };
function named(s: Source): string {
  if (s.env) return `--${s.flag} (from ${s.env})`;
  return s.isDefault ? `the default of --${s.flag}` : `--${s.flag}`;
}

function refuse(s: Source, spec: OptionSpec, text: string, why = `must be ${expected(spec)}`): never {
  throw new DeviceStreamsError("DS_USAGE", `${named(s)} ${why}, not "${text}"`);
}

function parseValue(spec: OptionSpec, text: string, s: Source): unknown {
  switch (spec.kind) {
    case "string":
      if (spec.choices && !spec.choices.includes(text)) refuse(s, spec, text);
      return text;
    case "file":
      return text;
    case "duration":
      try {
        return parseDuration(text);
      } catch (err) {
        throw new DeviceStreamsError("DS_USAGE", `${named(s)}: ${(err as Error).message}`);
      }
    case "integer": {
      const n = /^-?\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
      if (!Number.isSafeInteger(n)) refuse(s, spec, text);
      if (spec.min !== undefined && n < spec.min) refuse(s, spec, text, `must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) refuse(s, spec, text, `must be at most ${spec.max}`);
      return n || 0; // "-0" is 0, not -0 (which writes back as "0")
    }
    case "boolean":
      if (text !== "true" && text !== "false") refuse(s, spec, text);
      return text === "true";
    case "list": {
      const items = text
        .split(",")
        .map((v) => v.trim())
        .filter(Boolean);
      const { choices } = spec;
      if (choices && (!items.length || items.some((v) => !choices.includes(v)))) refuse(s, spec, text);
      return items;
    }
    case "address": {
      const full = spec.defaultHost && /^\d+$/.test(text) ? `${spec.defaultHost}:${text}` : text;
      try {
        splitHostPort(full);
      } catch (err) {
        throw new DeviceStreamsError("DS_USAGE", `${named(s)}: ${(err as Error).message}`);
      }
      return full;
    }
  }
}

export interface CommandLine {
  /** How the user runs the command, for messages: `devicestreams relay`. */
  name: string;
  /** The <COMMAND> of DEVICESTREAMS_<COMMAND>_<FLAG>; none: no variables are read. */
  env?: string;
  /** Whether arguments that are not flags are allowed (else refused). */
  positionals?: boolean;
}

/**
 * Reads argv (then the environment, then defaults) into typed values. `help` is set, and nothing
 * else checked, when -h/--help was given. Every refusal is a DS_USAGE error naming the flag.
 */
export function readCommandLine<S extends OptionSpecs>(
  specs: S,
  argv: string[],
  cmd: CommandLine,
): { help: boolean; values: OptionValues<S>; positionals: string[] } {
  const seeHelp = `run \`${cmd.name} --help\` for the options`;
  const config: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [flag, spec] of Object.entries(specs)) {
    config[flag] = { type: spec.kind === "boolean" ? "boolean" : "string" };
    if (spec.short) config[flag]!.short = spec.short;
  }
  // Not strict: the tokens are checked below, so that a boolean may also be written --flag=false
  // (as charts do) and each refusal can say what to write instead.
  const { tokens } = parseArgs({ args: argv, options: config, strict: false, allowPositionals: true, tokens: true });
  const given = new Map<string, string[]>();
  const positionals: string[] = [];
  let help = false;
  for (const t of tokens) {
    if (t.kind === "option-terminator") continue;
    if (t.kind === "positional") {
      positionals.push(t.value);
      continue;
    }
    if (t.name === "help") {
      help = true;
      continue;
    }
    const spec = specs[t.name];
    if (!spec) {
      const near = closestFlag(t.name, Object.keys(specs));
      const hint = near ? `did you mean --${near}? ` : "";
      throw new DeviceStreamsError("DS_USAGE", `unknown option ${t.rawName}; ${hint}${seeHelp}`);
    }
    let value = t.value;
    if (spec.kind === "boolean") value ??= "true";
    else if (value === undefined || (!t.inlineValue && value.startsWith("-") && value.length > 1)) {
      // parseArgs took the next flag as this one's value: say so rather than use it.
      const got =
        // The long form: parseArgs reads `-n=-x` as the value "=-x".
        value === undefined ? "got nothing" : `got "${value}"; write --${t.name}=VALUE for one that starts with -`;
      throw new DeviceStreamsError("DS_USAGE", `${t.rawName} needs a value (${expected(spec)}), ${got}`);
    }
    given.set(t.name, [...(given.get(t.name) ?? []), value]);
  }
  if (help) return { help, values: {} as OptionValues<S>, positionals };
  if (positionals.length && !cmd.positionals) {
    throw new DeviceStreamsError("DS_USAGE", `unexpected argument "${positionals[0]}"; ${seeHelp}`);
  }
  const values: Record<string, unknown> = {};
  for (const [flag, spec] of Object.entries(specs)) {
    const env = cmd.env ? envName(cmd.env, flag) : undefined;
    const fromFlag = given.get(flag);
    let text: string | undefined;
    let source: Source = { flag };
    if (fromFlag) text = spec.kind === "list" ? fromFlag.join(",") : fromFlag.at(-1);
    else if (env && process.env[env] !== undefined) {
      text = process.env[env];
      source = { flag, env };
    } else {
      text = spec.default ?? (spec.kind === "boolean" ? "false" : spec.kind === "list" ? "" : undefined);
      source = { flag, isDefault: true };
    }
    if (text === undefined || (text === "" && spec.kind !== "list")) {
      if (spec.required) {
        const orEnv = env ? ` (or set ${env})` : "";
        throw new DeviceStreamsError("DS_USAGE", `--${flag} is required${orEnv}: ${expected(spec)}; ${seeHelp}`);
      }
      const disabled = spec.kind === "address" && spec.emptyDisables;
      if (text === "" && spec.default && !disabled) refuse(source, spec, text, `needs a value (${expected(spec)})`);
      values[flag] = undefined;
      continue;
    }
    values[flag] = parseValue(spec, text, source);
  }
  return { help, values: values as OptionValues<S>, positionals };
}

/** A `devicestreams <command>`'s options; undefined when --help was asked for (usage printed). */
export function parseOptions<S extends OptionSpecs>(
  command: string,
  summary: string,
  specs: S,
  argv: string[],
): OptionValues<S> | undefined {
  const r = readCommandLine(specs, argv, { name: `devicestreams ${command}`, env: command });
  if (!r.help) return r.values;
  process.stdout.write(`${usage(command, summary, specs)}\n`);
  return undefined;
}

/** A typed value as a user would write it. */
function show(spec: OptionSpec, v: unknown): string {
  if (spec.kind === "duration") return formatDuration(v as number);
  return Array.isArray(v) ? v.join(",") : String(v);
}

/** The effective options, secrets redacted, for the startup log line. */
export function printable<S extends OptionSpecs>(specs: S, values: OptionValues<S>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [flag, spec] of Object.entries(specs)) {
    const v: unknown = values[flag];
    if (v === undefined || v === "" || (Array.isArray(v) && !v.length)) continue;
    out[flag] = spec.secret ? "[redacted]" : show(spec, v);
  }
  return out;
}

/** For options required only in one mode (the agent's static and hub modes). */
export function requireOption<T>(command: string, flag: string, value: T | undefined): T {
  if (value === undefined || value === "") {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--${flag} is required (or set ${envName(command, flag)}); run \`devicestreams ${command} --help\``,
    );
  }
  return value;
}

/** A value to pass: the typed value, or for a duration also its text (`5m`, as a CRD holds it). */
type ArgValue<O extends OptionSpec> = O extends { kind: "duration" } ? number | string : OptionValue<O>;
/** Typed values back to flags (`--name=value`), in the order given: how one command starts another. */
export type OptionArgs<S extends OptionSpecs> = {
  [K in keyof S as S[K] extends { required: true } ? K : never]: ArgValue<S[K]>;
} & {
  [K in keyof S as S[K] extends { required: true } ? never : K]?: ArgValue<S[K]>;
};

export function toArgv<S extends OptionSpecs>(specs: S, args: OptionArgs<S>): string[] {
  const out: string[] = [];
  for (const [flag, v] of Object.entries(args as Record<string, unknown>)) {
    const spec = specs[flag];
    if (!spec) throw new Error(`no option --${flag}`);
    if (v === undefined) continue;
    out.push(`--${flag}=${typeof v === "string" ? v : show(spec, v)}`);
  }
  return out;
}
