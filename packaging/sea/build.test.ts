import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { grpcInternals } from "./build.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("single executable bundle", () => {
  it("keeps grpc-js framing tunnel frames in place: the bundled grpc-framing finds grpc-js's internals", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ds-bundle-"));
    try {
      const bundle = join(dir, "framing.cjs");
      await build({
        stdin: {
          contents: 'import { installed } from "./transport/grpc-framing.ts"; console.log(JSON.stringify(installed));',
          resolveDir: root,
          loader: "ts",
        },
        outfile: bundle,
        bundle: true,
        platform: "node",
        format: "cjs",
        plugins: [grpcInternals],
        logLevel: "silent",
      });
      // Run away from the checkout: the bundle needs nothing but Node's own modules.
      assert.equal(execFileSync(process.execPath, [bundle], { cwd: dir, encoding: "utf8" }), "true\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
