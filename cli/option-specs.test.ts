import assert from "node:assert/strict";
import { runKubectlPlugin } from "../client/kubectl-plugin.ts";
import { runConnect } from "../client/main.ts";
import { runGateway } from "../gateway/main.ts";
import { runOperator } from "../operator/main.ts";
import { runRelay } from "../relay/main.ts";
import { type OptionSpec, readCommandLine } from "../runtime/options.ts";
import { runAgent } from "../sidecar/main.ts";
import { runDemo } from "./demo.ts";
import { commandOptionSpecs } from "./option-specs.ts";

/** What a required option gets here: any value its kind accepts. */
const sample = (spec: OptionSpec) => (spec.kind === "address" ? "127.0.0.1:1" : "x");

/** Runs `body` with stdout captured. */
async function stdoutOf(body: () => Promise<unknown>): Promise<string> {
  const write = process.stdout.write;
  let out = "";
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await body();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe("every command's options", () => {
  for (const [command, specs] of Object.entries(commandOptionSpecs)) {
    it(`${command}: every default is a value of its kind`, () => {
      const required = Object.entries(specs)
        .filter(([, spec]) => spec.required)
        .map(([flag, spec]) => `--${flag}=${sample(spec)}`);
      const { values } = readCommandLine(specs, required, { name: command });
      for (const [flag, spec] of Object.entries(specs)) {
        if (spec.default !== undefined) assert.notEqual(values[flag], undefined, `--${flag}`);
      }
    });
  }

  const runs: Record<string, (argv: string[]) => Promise<unknown>> = {
    relay: runRelay,
    agent: runAgent,
    connect: runConnect,
    gateway: runGateway,
    operator: runOperator,
    demo: runDemo,
    "kubectl-devicestream": runKubectlPlugin,
  };
  for (const [command, run] of Object.entries(runs)) {
    it(`${command} --help lists every flag`, async () => {
      const text = await stdoutOf(() => run(["--help"]));
      for (const flag of Object.keys(commandOptionSpecs[command]!)) assert.match(text, new RegExp(`--${flag}\\b`));
      assert.match(await stdoutOf(() => run(["-h"])), /^Usage|^kubectl devicestream/);
    });
  }
});
