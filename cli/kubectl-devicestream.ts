#!/usr/bin/env -S node --initial-old-space-size=64 --max-semi-space-size=8
// The kubectl plugin's executable: kubectl finds `kubectl-devicestream` on PATH and runs it for
// `kubectl devicestream …`.
import { runKubectlPlugin } from "../client/kubectl-plugin.ts";
import { describeError } from "../runtime/errors.ts";

try {
  process.exitCode = await runKubectlPlugin(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`kubectl devicestream: ${describeError(err)}\n`);
  process.exitCode = 1;
}
