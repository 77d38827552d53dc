// The flag tables of README.md and docs/, written from the option specs between markers
// `<!-- options: NAME -->` and `<!-- end options -->`, so that the docs list every flag there is.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { commandOptionSpecs as tables } from "../cli/option-specs.ts";
import type { OptionSpec, OptionSpecs } from "../runtime/options.ts";
import { version } from "../runtime/version.ts";

const files = [
  "README.md",
  "docs/operator.md",
  "docs/kubectl-plugin.md",
  "docs/gateway.md",
  "docs/browser-terminal.md",
];

/** The value column: the kind in a word or two (the README's prose says how durations are written). */
function kindWord(spec: OptionSpec): string {
  switch (spec.kind) {
    case "string":
      return spec.choices ? spec.choices.join(" \\| ") : "text";
    case "integer": {
      const { min, max } = spec;
      if (min !== undefined && max !== undefined) return `integer ${min}–${max}`;
      if (min !== undefined) return `integer ≥ ${min}`;
      return max !== undefined ? `integer ≤ ${max}` : "integer";
    }
    case "boolean":
      return "true/false";
    case "list":
      return spec.choices ? `list of ${spec.choices.join(" \\| ")}, repeatable` : "list, repeatable";
    case "address":
      return spec.defaultHost ? "[host:]port" : "host:port";
    case "file":
      return "path";
    case "duration":
      return "duration";
  }
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

export function optionTable(specs: OptionSpecs): string {
  const rows = [["flag", "value", "default", "meaning"]];
  for (const [flag, spec] of Object.entries(specs)) {
    // The image tag follows the package version: the docs name it instead of pinning one.
    const given = spec.default || (spec.kind === "boolean" ? "false" : "");
    const def = given ? `\`${given.replace(`:${version}`, ":<version>")}\`` : spec.required ? "required" : "";
    const name = `\`--${flag}\`${spec.short ? ` (\`-${spec.short}\`)` : ""}`;
    rows.push([name, kindWord(spec), def, cell(spec.description)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(rows[0]!), line(widths.map((w) => "-".repeat(w))), ...rows.slice(1).map(line)].join("\n");
}

const marker = /(<!-- options: ([\w-]+) -->\n)[\s\S]*?(<!-- end options -->)/g;

export function optionTableFiles(root: string): Array<{ path: string; content: string }> {
  return files.map((path) => {
    const text = readFileSync(join(root, path), "utf8");
    const content = text.replace(marker, (_, open: string, name: string, close: string) => {
      const specs = tables[name];
      if (!specs)
        throw new Error(`${path}: no option specs named "${name}" (known: ${Object.keys(tables).join(", ")})`);
      return `${open}\n${optionTable(specs)}\n\n${close}`;
    });
    return { path, content };
  });
}
