// Flags, environment and defaults for every command, in one shape: each option names its flag,
// its DEVICESTREAMS_* variable, its default and whether it is secret (redacted when printed).
import { parseArgs } from "node:util";
import { DeviceStreamsError } from "./errors.ts";

export interface OptionSpec {
  description: string;
  default?: string;
  /** Repeatable flag; values are joined with commas. */
  multiple?: boolean;
  secret?: boolean;
  boolean?: boolean;
  short?: string;
}

export type OptionSpecs = Record<string, OptionSpec>;
export type OptionValues<S extends OptionSpecs> = { [K in keyof S]: string | undefined };

function envName(command: string, flag: string): string {
  return `DEVICESTREAMS_${command}_${flag}`.toUpperCase().replace(/-/g, "_");
}

export function usage(command: string, summary: string, specs: OptionSpecs): string {
  const lines = [`Usage: devicestreams ${command} [options]`, "", summary, "", "Options:"];
  for (const [flag, spec] of Object.entries(specs)) {
    const def = spec.default !== undefined && spec.default !== "" ? ` (default ${spec.default})` : "";
    const short = spec.short ? `-${spec.short}, ` : "";
    lines.push(`  ${short}--${flag}${spec.boolean ? "" : " VALUE"}`);
    lines.push(`      ${spec.description}${def} [env ${envName(command, flag)}]`);
  }
  return lines.join("\n");
}

export function parseOptions<S extends OptionSpecs>(
  command: string,
  summary: string,
  specs: S,
  argv: string[],
): OptionValues<S> | undefined {
  const config: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [flag, spec] of Object.entries(specs)) {
    config[flag] = { type: spec.boolean ? "boolean" : "string" };
    if (spec.multiple) config[flag]!.multiple = true;
    if (spec.short) config[flag]!.short = spec.short;
  }
  let parsed: Record<string, string | boolean | string[] | undefined>;
  try {
    parsed = parseArgs({ args: argv, options: config, allowPositionals: false, strict: true }).values as typeof parsed;
  } catch (err) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `${(err as Error).message}; run \`devicestreams ${command} --help\` for the options`,
    );
  }
  if (parsed.help) {
    process.stdout.write(`${usage(command, summary, specs)}\n`);
    return undefined;
  }
  const out: Record<string, string | undefined> = {};
  for (const [flag, spec] of Object.entries(specs)) {
    const v = parsed[flag];
    const fromFlag = Array.isArray(v) ? v.join(",") : typeof v === "boolean" ? String(v) : v;
    out[flag] = fromFlag ?? process.env[envName(command, flag)] ?? spec.default;
  }
  return out as OptionValues<S>;
}

/** The effective options, secrets redacted, for the startup log line. */
export function printable(specs: OptionSpecs, values: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [flag, spec] of Object.entries(specs)) {
    const v = values[flag];
    if (v !== undefined && v !== "") out[flag] = spec.secret ? "[redacted]" : v;
  }
  return out;
}

export function requireOption(command: string, flag: string, value: string | undefined): string {
  if (value === undefined || value === "") {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--${flag} is required (or set ${envName(command, flag)}); run \`devicestreams ${command} --help\``,
    );
  }
  return value;
}

export function positiveInt(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new DeviceStreamsError("DS_USAGE", `--${flag} must be a whole number >= 0, not "${value}"`);
  }
  return n;
}
