// No Docker engine runs here, so the image is checked by reading: everything the CLI can load (its
// import graph, dynamic imports included) is copied into the image, every package it imports is a
// production dependency (the image installs with --omit=dev), and the image runs as 65532 with the
// CLI as its entrypoint.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { nodeFlags } from "../../cli/node-flags.ts";
import { root } from "./helpers.ts";

const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  bin: Record<string, string>;
};

/** Every local file and bare package the module graph from `entry` reaches. */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [entry];
  while (pending.length) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, "utf8");
    // Static imports and re-exports (not `import type`, which type stripping erases), and import().
    const specs = [
      ...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']/gm),
      ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
    ].map((m) => m[1]!);
    for (const spec of specs) {
      if (spec.startsWith(".")) {
        const target = resolve(dirname(file), spec);
        assert.ok(existsSync(target), `${relative(root, file)} imports ${spec}, which does not exist`);
        if (target.endsWith(".ts") || target.endsWith(".js")) pending.push(target);
      } else if (!spec.startsWith("node:") && !builtinModules.includes(spec)) {
        packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
      }
    }
  }
  return { files, packages };
}

describe("Dockerfile (read, not built: no Docker engine here)", () => {
  const graph = importGraph(join(root, "cli/devicestreams.ts"));

  it("copies every folder the CLI's import graph reaches, and package.json (the version)", () => {
    const copied = new Set([...dockerfile.matchAll(/^COPY (?!--from)(\S+) /gm)].map((m) => m[1]!.replace(/\/$/, "")));
    assert.ok(copied.has("package.json"));
    const folders = new Set([...graph.files].map((f) => relative(root, f).split("/")[0]!));
    for (const folder of folders)
      assert.ok(copied.has(folder), `the image lacks ${folder}/ (add COPY ${folder} ./${folder})`);
    assert.ok(graph.files.size > 20, `the import graph has only ${graph.files.size} files: is the scan broken?`);
  });

  it("imports only production dependencies, which npm ci --omit=dev installs", () => {
    assert.match(dockerfile, /npm ci --omit=dev/);
    for (const p of graph.packages) {
      assert.ok(p in pkg.dependencies, `the CLI imports ${p}, which is not in package.json's dependencies`);
    }
  });

  it("runs Node.js 24 as user 65532 with the CLI as entrypoint and the subcommand as argument", () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!);
    assert.ok(froms.length >= 2, "multi-stage");
    for (const f of froms) assert.match(f, /^node:24[-.]/);
    assert.match(dockerfile, /^USER 65532:65532$/m);
    const entrypoint = JSON.stringify(["node", ...nodeFlags, "/app/cli/devicestreams.ts"]).replaceAll(",", ", ");
    assert.ok(dockerfile.split("\n").includes(`ENTRYPOINT ${entrypoint}`), `the ENTRYPOINT must be ${entrypoint}`);
  });

  it("gives the image's entrypoint and both executables' shebangs the Node.js flags of cli/node-flags.ts", () => {
    const shebang = `#!/usr/bin/env -S node ${nodeFlags.join(" ")}`;
    for (const bin of Object.values(pkg.bin)) {
      // The bins are compiled into dist/ (packaging/build-dist.ts), which keeps each source's first line.
      const source = bin.replace(/^dist\//, "").replace(/\.js$/, ".ts");
      const first = readFileSync(join(root, source), "utf8").split("\n")[0];
      assert.equal(first, shebang, `${bin} starts with ${first}`);
    }
    assert.ok(nodeFlags.length > 0);
  });

  it(".dockerignore keeps git, node_modules and key material out of the build context", () => {
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8").split("\n");
    for (const p of [".git", "node_modules", "*.pem", "*.key"])
      assert.ok(ignored.includes(p), `.dockerignore lacks ${p}`);
  });
});
