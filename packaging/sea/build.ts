// `npm run build:sea`: the agent and the kubectl plugin as one executable each (Node.js single
// executable applications) in build/sea/, from the same sources as `devicestreams agent` and
// `kubectl devicestream`: build/sea/devicestreams-agent for devices without Kubernetes
// (packaging/systemd), build/sea/kubectl-devicestream for krew (packaging/krew).
//
// A single executable runs one script and can require only Node's built-in modules, so esbuild
// first bundles the entry point (packaging/sea/NAME.ts) and its dependencies into one CommonJS
// file (tsc only strips types file by file and leaves the imports). esbuild: one small
// dependency-free binary, fast (well under a second here), and it reads TypeScript directly. Then Node writes the
// preparation blob and postject injects it into a copy of this Node.js binary, the version
// package.json pins.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { nodeFlags } from "../../cli/node-flags.ts";
import { assetNames, seaAssetKey, webAssetFiles } from "../../client/web/assets.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const require = createRequire(import.meta.url);
const { inject } = require("postject") as {
  inject(file: string, resource: string, data: Buffer, o: { sentinelFuse: string }): Promise<void>;
};

/** The browser terminal's files by their SEA asset key. */
function webSeaAssets(): Record<string, string> {
  const files = webAssetFiles();
  return Object.fromEntries(assetNames.map((name) => [seaAssetKey(name), files[name]]));
}

/** The executables, each named after its entry point packaging/sea/NAME.ts. */
export const seaEntries = { "devicestreams-agent": "agent.ts", "kubectl-devicestream": "kubectl-devicestream.ts" };
export type SeaName = keyof typeof seaEntries;

/** Builds executable `name` into outDir/name (the bundle and the blob beside it); returns its path. */
export async function buildSea(name: SeaName, outDir = join(root, "build/sea")): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const bundle = join(outDir, `${name}.cjs`);
  await build({
    entryPoints: [join(root, "packaging/sea", seaEntries[name])],
    outfile: bundle,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "cjs",

    // A single executable has no module URL; code that reads files beside it asks node:sea first.
    define: { "import.meta.url": "undefined" },
    // Optional peers of ws that it loads only when installed; they are not. ssh2's optional native
    // crypto (*.node, built only where a compiler was at install time) cannot be in a single
    // executable: its require fails there and ssh2 uses Node's crypto instead.
    external: ["bufferutil", "utf-8-validate", "*.node"],
    legalComments: "none",
    logLevel: "warning",
  });
  const blob = join(outDir, `${name}.blob`);
  const config = join(outDir, `${name}.sea-config.json`);
  writeFileSync(
    config,
    JSON.stringify({
      main: bundle,
      output: blob,
      disableExperimentalSEAWarning: true,
      // The flags every devicestreams process runs with (cli/node-flags.ts).
      execArgv: nodeFlags,
      // The browser terminal's page and xterm.js, read with node:sea's getAsset (client/web/assets.ts).
      ...(name === "kubectl-devicestream" ? { assets: webSeaAssets() } : {}),
    }),
  );
  execFileSync(process.execPath, ["--experimental-sea-config", config]);
  const binary = join(outDir, name);
  rmSync(binary, { force: true });
  copyFileSync(process.execPath, binary);
  await inject(binary, "NODE_SEA_BLOB", readFileSync(blob), {
    sentinelFuse: "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2",
  });
  return binary;
}

// `node packaging/sea/build.ts [--out DIR] [NAME ...]`: every executable by default; prints the paths.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ options: { out: { type: "string" } }, allowPositionals: true });
  const names = positionals.length ? positionals : Object.keys(seaEntries);
  for (const name of names) {
    if (!(name in seaEntries)) throw new Error(`no single executable "${name}"; there are ${Object.keys(seaEntries)}`);
    process.stdout.write(`${await buildSea(name as SeaName, values.out)}\n`);
  }
}
