// The image scripts/build-image.sh builds (without Docker) against what Dockerfile describes: the
// same user, entrypoint, command, working folder, environment and ports, and the same files under
// /app (every folder the Dockerfile copies, production dependencies only), owned by root and not
// writable by the user the image runs as.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runChecked } from "../helpers/command.ts";
import { imageDir, nodeCluster, root } from "./node-cluster.ts";

interface OciConfig {
  architecture: string;
  os: string;
  config: {
    User?: string;
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    Env?: string[];
    ExposedPorts?: Record<string, object>;
  };
}

const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
/** The last stage's instructions (after the last FROM), continuation lines joined. */
const finalStage = dockerfile
  .split(/^FROM .*$/m)
  .at(-1)!
  .replace(/\\\n(\s*#.*\n)*/g, " ")
  .split("\n")
  .filter((l) => l.trim() && !l.trim().startsWith("#"));
const instruction = (name: string) =>
  finalStage.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());

function blob(layout: string, digest: string): Buffer {
  return readFileSync(join(layout, "blobs", ...digest.split(":")));
}

describe("the image built without Docker agrees with Dockerfile", function () {
  this.timeout(1_800_000);
  const layout = join(imageDir, "devicestreams");
  let config: OciConfig;
  /** "mode uid/gid path" of every entry of every layer. */
  let entries: { mode: string; owner: string; path: string }[];

  before(async () => {
    await nodeCluster(); // builds the image (and loads it into containerd)
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const manifest = JSON.parse(blob(layout, index.manifests[0].digest).toString());
    config = JSON.parse(blob(layout, manifest.config.digest).toString());
    entries = [];
    for (const layer of manifest.layers as { digest: string }[]) {
      const file = join(layout, "blobs", ...layer.digest.split(":"));
      const list = await runChecked("tar", ["-tvzf", file, "--numeric-owner"], { timeoutMs: 120_000 });
      for (const line of list.stdout.split("\n").filter(Boolean)) {
        const [mode, owner, , , , ...rest] = line.split(/\s+/);
        entries.push({
          mode: mode!,
          owner: owner!,
          path: rest
            .join(" ")
            .replace(/^\.?\//, "")
            .split(" -> ")[0]!,
        });
      }
    }
  });

  it("runs as the Dockerfile's USER with its ENTRYPOINT, CMD and WORKDIR", () => {
    assert.deepEqual(instruction("USER"), [config.config.User]);
    assert.deepEqual(JSON.parse(instruction("ENTRYPOINT")[0]!), config.config.Entrypoint);
    assert.deepEqual(JSON.parse(instruction("CMD")[0]!), config.config.Cmd);
    assert.deepEqual(instruction("WORKDIR"), [config.config.WorkingDir]);
    assert.equal(config.os, "linux");
    assert.equal(config.architecture, "amd64");
  });

  it("sets the Dockerfile's ENV and EXPOSEs its ports", () => {
    const env = instruction("ENV").flatMap((l) => l.split(/\s+/));
    for (const kv of env) assert.ok(config.config.Env?.includes(kv), `the image lacks ENV ${kv}`);
    const ports = instruction("EXPOSE").flatMap((l) => l.split(/\s+/));
    assert.deepEqual(Object.keys(config.config.ExposedPorts ?? {}).sort(), ports.map((p) => `${p}/tcp`).sort());
  });

  it("holds every folder the Dockerfile copies, and node on PATH", () => {
    const paths = new Set(entries.map((e) => e.path.replace(/\/$/, "")));
    for (const copy of instruction("COPY")) {
      const [src, dest] = copy.replace(/^--from=\S+ /, "").split(/\s+/);
      const target = join("/app", dest === "./" ? src! : dest!).slice(1);
      assert.ok(paths.has(target), `the image lacks ${target} (Dockerfile: COPY ${copy})`);
    }
    // .dockerignore keeps tests and key material out of the build context, so out of the image.
    const ignored = [...paths].filter((p) => !p.includes("/node_modules/") && /\.test\.ts$|\.pem$|\.key$/.test(p));
    assert.deepEqual(ignored, [], "files .dockerignore excludes are in the image");
    assert.ok(paths.has("usr/local/bin/node"));
    assert.ok(paths.has("app/cli/devicestreams.ts"));
  });

  it("has the production dependencies of package-lock.json, and none of its dev-only packages", () => {
    const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean; optional?: boolean }>;
    };
    const inImage = new Set(
      entries
        .map((e) => e.path.match(/^app\/(.*node_modules\/(?:@[^/]+\/)?[^/]+)\/package\.json$/)?.[1])
        .filter(Boolean),
    );
    for (const [path, p] of Object.entries(lock.packages)) {
      if (!path) continue;
      if (p.dev) assert.ok(!inImage.has(path), `the image holds ${path}, which only development needs`);
      else if (!p.optional) assert.ok(inImage.has(path), `the image lacks ${path}`);
    }
    assert.ok(inImage.size > 20, `only ${inImage.size} packages: is the scan broken?`);
  });

  it("keeps /app owned by root and not writable by its user; /tmp is the writable folder", () => {
    const app = entries.filter((e) => e.path.startsWith("app/") && !e.mode.startsWith("l"));
    assert.ok(app.length > 100, `only ${app.length} files under /app`);
    for (const e of app) {
      assert.equal(e.owner, "0/0", `${e.path} is owned by ${e.owner}`);
      assert.doesNotMatch(e.mode, /^.{5}w|^.{8}w/, `${e.path} is writable by group or others (${e.mode})`);
    }
    const tmp = entries.find((e) => e.path === "tmp/");
    assert.equal(tmp?.mode, "drwxrwxrwt");
  });
});
