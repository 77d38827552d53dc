#!/usr/bin/env -S node --initial-old-space-size=64 --max-semi-space-size=8
// One binary, one subcommand per component (the container image's entrypoint too).
import { describeError } from "../runtime/errors.ts";
import { version } from "../runtime/version.ts";

const commands: Record<string, { summary: string; run: (argv: string[]) => Promise<unknown> }> = {
  relay: { summary: "serve one stream's relay", run: async (a) => (await import("../relay/main.ts")).runRelay(a) },
  agent: {
    summary: "run the edge agent (sidecar)",
    run: async (a) => (await import("../sidecar/main.ts")).runAgent(a),
  },
  connect: {
    summary: "reach a device through a relay",
    run: async (a) => (await import("../client/main.ts")).runConnect(a),
  },
  gateway: {
    summary: "route TLS to relays and the hub by server name",
    run: async (a) => (await import("../gateway/main.ts")).runGateway(a),
  },
  operator: {
    summary: "reconcile DeviceStreams into relays (cloud cluster)",
    run: async (a) => (await import("../operator/main.ts")).runOperator(a),
  },
  demo: {
    summary: "run relay, agent and a target on loopback",
    run: async (a) => (await import("./demo.ts")).runDemo(a),
  },
};

function help(): string {
  const lines = [`devicestreams ${version}`, "", "Usage: devicestreams <command> [options]", "", "Commands:"];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push("", "Run `devicestreams <command> --help` for a command's options.");
  return lines.join("\n");
}

const [name, ...argv] = process.argv.slice(2);
if (!name || name === "--help" || name === "-h" || name === "help") {
  process.stdout.write(`${help()}\n`);
} else if (name === "--version" || name === "version") {
  process.stdout.write(`${version}\n`);
} else if (!commands[name]) {
  process.stderr.write(`devicestreams: unknown command "${name}"\n\n${help()}\n`);
  process.exitCode = 2;
} else {
  try {
    await commands[name].run(argv);
  } catch (err) {
    process.stderr.write(`devicestreams ${name}: ${describeError(err)}\n`);
    process.exit(1);
  }
}
