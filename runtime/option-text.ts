// How options are written and described: their DEVICESTREAMS_* variables, what each kind
// expects (in messages and --help), the --help text, and the flag a typo most likely meant.
import type { OptionSpec, OptionSpecs } from "./options.ts";

export function envName(command: string, flag: string): string {
  return `DEVICESTREAMS_${command}_${flag}`.toUpperCase().replace(/-/g, "_");
}

function oneOf(choices: readonly string[]): string {
  return choices.length > 1 ? `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}` : choices.join("");
}

/** What a value must look like, in words: --help and the README's tables say it. */
export function expected(spec: OptionSpec): string {
  switch (spec.kind) {
    case "string":
      return spec.choices ? oneOf(spec.choices) : "text";
    case "file":
      return "a file path";
    case "duration":
      return "a duration (500ms, 30s, 15m, 1h30m; 0 for none)";
    case "integer": {
      const { min, max } = spec;
      if (min !== undefined && max !== undefined) return `a whole number from ${min} to ${max}`;
      if (min !== undefined) return `a whole number >= ${min}`;
      return max !== undefined ? `a whole number <= ${max}` : "a whole number";
    }
    case "boolean":
      return "true or false";
    case "list":
      return spec.choices
        ? `one or more of ${oneOf(spec.choices)} (a comma list, or the flag repeated)`
        : "a comma list, or the flag repeated";
    case "address":
      return spec.defaultHost ? `[host:]port (host ${spec.defaultHost} when omitted)` : "host:port";
  }
}

function placeholder(spec: OptionSpec): string {
  if (spec.placeholder) return spec.placeholder;
  switch (spec.kind) {
    case "string":
      return spec.choices ? spec.choices.join("|") : "TEXT";
    case "file":
      return "PATH";
    case "duration":
      return "DURATION";
    case "integer":
      return "N";
    case "boolean":
      return "";
    case "list":
      return spec.choices ? `${spec.choices.join("|")}[,...]` : "VALUE[,VALUE...]";
    case "address":
      return spec.defaultHost ? "[HOST:]PORT" : "HOST:PORT";
  }
}

/** The flag as --help shows it: `-L, --local [HOST:]PORT`. */
function flagSynopsis(flag: string, spec: OptionSpec): string {
  const value = placeholder(spec);
  return `${spec.short ? `-${spec.short}, ` : ""}--${flag}${value ? ` ${value}` : ""}`;
}

/** What --help adds after the description where the placeholder says too little. */
function helpNotes(spec: OptionSpec): string[] {
  const notes: string[] = [];
  if (spec.kind === "integer" && (spec.min !== undefined || spec.max !== undefined)) {
    notes.push(expected(spec).replace("a whole number", "N"));
  }
  if (spec.kind === "list") notes.push("repeatable");
  if (spec.kind === "address" && spec.defaultHost) notes.push(`host ${spec.defaultHost} when omitted`);
  if (spec.default) notes.push(`default ${spec.default}`);
  else if (spec.required) notes.push("required");
  return notes;
}

/** One entry per option; `command` adds each option's DEVICESTREAMS_* variable. */
export function optionHelp(specs: OptionSpecs, command?: string): string[] {
  const lines: string[] = [];
  for (const [flag, spec] of Object.entries(specs)) {
    const notes = helpNotes(spec);
    lines.push(`  ${flagSynopsis(flag, spec)}`);
    lines.push(`      ${spec.description.replace(/`/g, "")}${notes.length ? ` (${notes.join("; ")})` : ""}`);
    if (command) lines.push(`      [env ${envName(command, flag)}]`);
  }
  const kinds = new Set(Object.values(specs).map((s) => s.kind));
  const how = [
    kinds.has("duration") ? "DURATION: 500ms, 30s, 15m, 1h30m; 0 for none." : "",
    kinds.has("boolean") ? "A switch is --flag, or --flag=true|false." : "",
    command ? "A flag given wins over its variable." : "",
  ].filter(Boolean);
  if (how.length) lines.push("", ...how);
  return lines;
}

export function usage(command: string, summary: string, specs: OptionSpecs): string {
  return [`Usage: devicestreams ${command} [options]`, "", summary, "", "Options:", ...optionHelp(specs, command)].join(
    "\n",
  );
}

/** The flag a typo most likely meant (`--server_name`, `--relay-adress`): one edit per three letters, two at most. */
export function closestFlag(name: string, flags: string[]): string | undefined {
  let best: string | undefined;
  let bestCost = Math.min(2, Math.floor(name.length / 3)) + 1;
  for (const flag of flags) {
    // Levenshtein distance, one row at a time.
    let row = Array.from({ length: flag.length + 1 }, (_, j) => j);
    for (let i = 1; i <= name.length; i++) {
      const next = [i];
      for (let j = 1; j <= flag.length; j++) {
        next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (name[i - 1] === flag[j - 1] ? 0 : 1));
      }
      row = next;
    }
    if (row[flag.length]! < bestCost) [best, bestCost] = [flag, row[flag.length]!];
  }
  return best;
}
