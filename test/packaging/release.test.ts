// The release's assets (packaging/release.ts) as a user gets them: the krew manifest's sha256
// against the archive its URL names, the plugin from krew's archive run by kubectl with no Node.js
// and no checkout, and the agent's archive installed by its install.sh into a root of its own, where
// systemd-analyze checks the unit (this machine does not run systemd; verify works on files).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { load } from "js-yaml";
import packageJson from "../../package.json" with { type: "json" };
import { removeOnExit } from "../helpers/child-process.ts";
import { runCommand } from "../helpers/command.ts";
import { seaBinary, seaDir } from "../helpers/sea.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const tag = `v${packageJson.version}`;
const releases = "https://github.com/devicestreams/devicestreams/releases/download";

interface KrewPlugin {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    version: string;
    homepage: string;
    shortDescription: string;
    platforms: Array<{ selector: { matchLabels: Record<string, string> }; uri: string; sha256: string; bin: string }>;
  };
}

/** Runs a program to its end in `cwd` with only `env`; never rejects on a non-zero exit. */
async function run(cmd: string, args: string[], o: { cwd: string; env: NodeJS.ProcessEnv }) {
  try {
    const { stdout, stderr } = await promisify(execFile)(cmd, args, { ...o, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? e.message };
  }
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
/** No Node.js, no checkout: the system's programs only. */
const bare = (dir: string) => ({ PATH: `${dir}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: dir });

describe("release assets: krew manifest and archives, the agent's install.sh and systemd unit", function () {
  this.timeout(600_000);
  let out: string;
  let work: string;
  let manifest: KrewPlugin;

  const extract = async (archive: string) => {
    const dir = mkdtempSync(join(work, "x-"));
    const r = await runCommand("tar", ["-xzf", join(out, archive), "-C", dir]);
    assert.equal(r.code, 0, r.stderr);
    return dir;
  };
  const archiveOf = (name: string) => `${name}_${tag}_linux_amd64.tar.gz`;

  before(async function () {
    // The archives wrap this machine's Node.js binary, which is linux/amd64 only (docs/releasing.md).
    if (process.platform !== "linux" || process.arch !== "x64") this.skip();
    work = mkdtempSync(join(tmpdir(), "ds-release-"));
    removeOnExit(work);
    out = join(work, "release");
    await Promise.all([seaBinary("kubectl-devicestream"), seaBinary("devicestreams-agent")]);
    const script = join(root, "packaging/release.ts");
    const r = await runCommand(process.execPath, [script, "--out", out, "--sea", seaDir()], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    manifest = load(readFileSync(join(out, "devicestream.yaml"), "utf8")) as KrewPlugin;
  });

  it("the krew manifest points at this release's archives, each with its sha256", () => {
    assert.equal(manifest.apiVersion, "krew.googlecontainertools.github.com/v1alpha2");
    assert.equal(manifest.kind, "Plugin");
    // krew installs plugin NAME as kubectl-NAME: the name kubectl runs.
    assert.equal(manifest.metadata.name, "devicestream");
    assert.equal(manifest.spec.version, tag);
    assert.ok(manifest.spec.shortDescription.length <= 80, "krew-index wants a short description");
    assert.ok(manifest.spec.platforms.length > 0);
    const sums = readFileSync(join(out, "SHA256SUMS"), "utf8");
    for (const p of manifest.spec.platforms) {
      const file = basename(p.uri);
      assert.equal(p.uri, `${releases}/${tag}/${file}`);
      assert.ok(existsSync(join(out, file)), `the release has no ${file}`);
      assert.equal(p.sha256, sha256(join(out, file)), `${file}'s sha256`);
      assert.ok(sums.includes(`${p.sha256}  ${file}\n`), `SHA256SUMS lacks ${file}`);
      assert.equal(p.bin, "kubectl-devicestream");
      assert.deepEqual(Object.keys(p.selector.matchLabels).sort(), ["arch", "os"]);
    }
    assert.ok(manifest.spec.platforms.some((p) => basename(p.uri) === archiveOf("kubectl-devicestream")));
  });

  it("kubectl runs the plugin from krew's archive with no Node.js and no checkout", async () => {
    const dir = await extract(archiveOf("kubectl-devicestream"));
    const bin = join(dir, manifest.spec.platforms[0]!.bin);
    assert.ok(statSync(bin).mode & 0o100, `${bin} is not executable`);
    const help = await run("kubectl", ["devicestream", "--help"], { cwd: dir, env: bare(dir) });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^kubectl devicestream: reach a device's TCP service through a DeviceStream/);
    // Past --help: the bundled code runs as far as reading the kubeconfig, and names the problem.
    const bad = await run("kubectl", ["devicestream", "list", "--kubeconfig=/nonexistent"], {
      cwd: dir,
      env: bare(dir),
    });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /DS_KUBECONFIG: cannot read the kubeconfig \(ENOENT[^)]*'\/nonexistent'\)/);

    // `web` reads its page and xterm.js from the executable's own assets before it asks the
    // cluster (here an API server nothing listens for): past them, it fails on the cluster alone.
    const kubeconfig = join(dir, "unreachable.kubeconfig");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:1" } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const key = join(dir, "id_ed25519");
    assert.equal(
      (await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key], { cwd: dir, env: bare(dir) })).code,
      0,
    );
    const web = await run("kubectl", ["devicestream", "web", "s", `--kubeconfig=${kubeconfig}`, "-i", key], {
      cwd: dir,
      env: bare(dir),
    });
    assert.equal(web.code, 1);
    assert.match(web.stderr, /^kubectl devicestream: DS_KUBE_UNREACHABLE: .*ECONNREFUSED 127\.0\.0\.1:1/);
  });

  it("install.sh installs the agent's archive into a root; systemd-analyze verify passes, exposure OK", async () => {
    const dir = await extract(archiveOf("devicestreams-agent"));
    for (const f of ["devicestreams-agent", "devicestreams-agent.service", "install.sh", "LICENSE"])
      assert.ok(existsSync(join(dir, f)), `the agent's archive lacks ${f}`);
    const input = join(work, "input");
    mkdirSync(input);
    writeFileSync(join(input, "hub-ca.crt"), "-----BEGIN CERTIFICATE-----\n");
    writeFileSync(join(input, "token"), "one-time-token\n");
    const sysroot = join(work, "root");
    const args = [
      ...["--hub", "hub.example.com:8444", "--device", "factory-1/press-7"],
      ...["--hub-ca", join(input, "hub-ca.crt"), "--enrollment-token", join(input, "token")],
      ...["--allow", "ssh=127.0.0.1:22", "--allow", "web=127.0.0.1:80", "--root", sysroot],
    ];
    const r = await run(join(dir, "install.sh"), args, { cwd: dir, env: bare(dir) });
    assert.equal(r.code, 0, r.stderr);

    const etc = join(sysroot, "etc/devicestreams");
    assert.equal(statSync(join(etc, "enrollment-token")).mode & 0o777, 0o600);
    assert.equal(statSync(join(sysroot, "usr/local/bin/devicestreams-agent")).mode & 0o777, 0o755);
    const env = readFileSync(join(etc, "agent.env"), "utf8");
    assert.match(env, /^DEVICESTREAMS_AGENT_HUB=hub\.example\.com:8444$/m);
    assert.match(env, /^DEVICESTREAMS_AGENT_DEVICE=factory-1\/press-7$/m);
    assert.match(env, /^DEVICESTREAMS_AGENT_ALLOW=ssh=127\.0\.0\.1:22,web=127\.0\.0\.1:80$/m);
    const unit = readFileSync(join(sysroot, "etc/systemd/system/devicestreams-agent.service"), "utf8");
    for (const line of ["DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=devicestreams-agent"])
      assert.ok(unit.split("\n").includes(line), `the unit lacks ${line}`);

    // verify loads the unit's dependencies (sysinit.target, ...) from the root too.
    cpSync("/usr/lib/systemd/system", join(sysroot, "usr/lib/systemd/system"), { recursive: true });
    const analyze = (sub: string[]) =>
      run("systemd-analyze", [...sub, `--root=${sysroot}`, "devicestreams-agent.service"], {
        cwd: work,
        env: bare(work),
      }).then((a) => {
        if (/ENOENT/.test(a.stderr)) throw new Error("no systemd-analyze: apt-get install systemd (.ci/run does)");
        return a;
      });
    const verify = await analyze(["verify"]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), "", "systemd-analyze verify warns");
    const security = await analyze(["security", "--offline=true"]);
    const exposure = /Overall exposure level for devicestreams-agent\.service: ([\d.]+)/.exec(security.stdout);
    assert.ok(exposure, security.stdout + security.stderr);
    // systemd rates 0-10; up to 2 is "OK", the best of its bands.
    assert.ok(Number(exposure[1]) <= 2, `exposure ${exposure[1]}:\n${security.stdout}`);
  });

  it("install.sh refuses incomplete input and names the flag that is missing", async () => {
    const dir = await extract(archiveOf("devicestreams-agent"));
    const r = await run(join(dir, "install.sh"), ["--hub", "hub:8444", "--root", join(work, "nowhere")], {
      cwd: dir,
      env: bare(dir),
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--device NAMESPACE\/NAME is required/);
    assert.ok(!existsSync(join(work, "nowhere")), "it wrote something before refusing");
  });
});
