// What a user installs, not the checkout: the npm package packed and installed with `npm install -g`
// into an empty prefix (compiled JavaScript on Node.js 24, found by kubectl on PATH), and the agent
// as one executable installed by packaging/systemd/install.sh and started as its unit starts it.
// The executable enrols through the hub, and the installed plugin's open and connect carry 64 MiB
// to an echo service on the device.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Device } from "../../api/v1alpha1.ts";
import { core, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import packageJson from "../../package.json" with { type: "json" };
import { removeOnExit } from "../helpers/child-process.ts";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { type CommandResult, runCommand } from "../helpers/command.ts";
import { echoTransfer } from "../helpers/echo-transfer.ts";
import { readEnrollmentToken } from "../helpers/enrollment.ts";
import { createDevice } from "../helpers/hub-agent.ts";
import { seaBinary } from "../helpers/sea.ts";
import { hubAvailable, System } from "../helpers/system.ts";
import { startTcpBalancer, type TcpBalancer } from "../helpers/tcp-balancer.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, operatorNamespace } from "../operator/env.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const ns = "e2e-installed";
/** Node.js 24 and the system's programs (kubectl, npm): what a fresh machine has. */
const nodeDir = dirname(process.execPath);
const describeIfHub = hubAvailable ? describe : describe.skip;

/** The npm package as a user installs it: packed from this checkout, installed into `prefix`. */
async function installPackage(work: string, prefix: string): Promise<void> {
  const env = { PATH: `${nodeDir}:/usr/bin:/bin`, HOME: process.env.HOME };
  const check = (what: string, r: CommandResult) => assert.equal(r.code, 0, `${what}:\n${r.stdout}${r.stderr}`);
  // Runs prepack (npm run build): dist/ is built here, as a release would build it.
  const pack = await runCommand("sh", ["-c", `cd '${root}' && npm pack --silent --pack-destination '${work}'`], {
    env,
    timeoutMs: 180_000,
  });
  check("npm pack", pack);
  const tarball = join(work, `devicestreams-${packageJson.version}.tgz`);
  // From npm's cache when it has the dependencies (CI's npm ci filled it), else from the registry.
  const install = await runCommand(
    "sh",
    ["-c", `cd '${work}' && npm install -g --prefix '${prefix}' --prefer-offline --no-audit --no-fund '${tarball}'`],
    { env, timeoutMs: 300_000 },
  );
  check("npm install -g", install);
}

/** Every file under dir (not into node_modules). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.name === "node_modules" ? [] : e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/**
 * The unit's ExecStart, environment and credential as systemd would give them, inside `sysroot`:
 * its /etc and /usr/local paths under sysroot, %S the state root, %d the credentials folder
 * holding what LoadCredential names. systemd itself does not run here.
 */
function unitCommand(sysroot: string): { argv: string[]; env: Record<string, string>; stateDir: string } {
  const unit = readFileSync(join(sysroot, "etc/systemd/system/devicestreams-agent.service"), "utf8");
  const execStart = /^ExecStart=(.*)$/m.exec(unit.replaceAll("\\\n", " "))![1]!;
  const credentials = join(sysroot, "run/credentials/devicestreams-agent.service");
  mkdirSync(credentials, { recursive: true });
  for (const m of unit.matchAll(/^LoadCredential=([^:]+):(.+)$/gm))
    copyFileSync(join(sysroot, m[2]!), join(credentials, m[1]!));
  const argv = execStart
    .trim()
    .split(/\s+/)
    .map((a) =>
      a
        .replace(/(^|=)\/(etc|usr)\//, `$1${sysroot}/$2/`)
        .replace("%S", join(sysroot, "var/lib"))
        .replace("%d", credentials),
    );
  const env: Record<string, string> = {};
  for (const line of readFileSync(join(sysroot, "etc/devicestreams/agent.env"), "utf8").split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return { argv, env, stateDir: join(sysroot, "var/lib/devicestreams-agent") };
}

describeIfHub("installed: npm install -g, and the single-file agent as its systemd unit runs it", function () {
  this.timeout(600_000);
  let sys: System;
  let work: string;
  let prefix: string;
  let agentBinary: string;
  let echo: TcpTarget;
  let hub: TcpBalancer | undefined;
  let agent: ChildProcess | undefined;
  let agentLog = "";
  let transcript = "";

  /** `kubectl devicestream …` with only the installed package, Node.js 24 and kubectl on PATH. */
  const installedPath = () => `${prefix}/bin:${nodeDir}:/usr/bin:/bin`;
  const installed = (args: string[], timeoutMs?: number) =>
    runCommand(args[0]!, args.slice(1), { env: { PATH: installedPath(), HOME: work }, timeoutMs }).then((r) => {
      transcript += `$ ${args.join(" ")}\n${r.stdout}${r.stderr}`;
      return r;
    });
  const plugin = (sub: string, ...rest: string[]) =>
    installed(["kubectl", "devicestream", sub, `--kubeconfig=${sys.userKubeconfig}`, ...rest], 90_000);

  before(async function () {
    this.timeout(600_000);
    work = mkdtempSync(join(tmpdir(), "ds-installed-"));
    removeOnExit(work);
    prefix = join(work, "prefix");
    [sys, echo, agentBinary] = await Promise.all([
      System.start({ namespace: ns }),
      echoServer(),
      seaBinary("devicestreams-agent"),
      installPackage(work, prefix),
    ]);
  });
  after(async () => {
    agent?.kill("SIGKILL");
    await hub?.close();
    await sys?.stop();
    await echo?.close();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(
        `----- agent -----\n${agentLog.slice(-15_000)}\n----- commands -----\n${transcript.slice(-10_000)}`,
      );
    }
  });

  it("npm install -g gives devicestreams and kubectl-devicestream, compiled, on Node.js 24", async () => {
    const list = await installed(["kubectl", "plugin", "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      list.stdout.split("\n").filter((l) => l.includes("devicestream")),
      [`${prefix}/bin/kubectl-devicestream`],
    );
    const help = await installed(["kubectl", "devicestream", "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^kubectl devicestream: reach a device's TCP service through a DeviceStream/);
    const version = await installed(["devicestreams", "--version"]);
    assert.equal(version.stdout, `${packageJson.version}\n`, version.stderr);
    // JavaScript only: Node would refuse .ts files under node_modules.
    const files = filesUnder(join(prefix, "lib/node_modules/devicestreams"));
    assert.ok(files.some((f) => f.endsWith("dist/cli/kubectl-devicestream.js")));
    // The browser terminal's page ships beside the code, and xterm.js resolves from the installed package.
    const assets = await installed([
      "node",
      "--input-type=module",
      "-e",
      `const m = await import("${prefix}/lib/node_modules/devicestreams/dist/client/web/assets.js"); console.log([...m.loadWebAssets().keys()].join(" "));`,
    ]);
    assert.equal(
      assets.stdout,
      "index.html terminal.js terminal.css xterm.mjs xterm.css addon-fit.mjs\n",
      assets.stderr,
    );
    assert.deepEqual(
      files.filter((f) => f.endsWith(".ts")),
      [],
    );
  });

  it("the single executable enrols through the hub; the installed plugin's open and connect carry 64 MiB", async () => {
    // As an administrator would: a Device, its token and the hub's CA handed to the box.
    const device = "bare-box";
    await createDevice(sys, ns, device);
    const { token } = await readEnrollmentToken(sys.env.admin, ns, device);
    const ca = await sys.env.admin.get<Secret>(objectPath(core.secrets, operatorNamespace, "devicestreams-ca"));
    const input = join(work, "input");
    mkdirSync(input);
    writeFileSync(join(input, "hub-ca.crt"), Buffer.from(ca.data!["tls.crt"]!, "base64"));
    writeFileSync(join(input, "token"), token, { mode: 0o600 });
    hub = await startTcpBalancer(() => sys.operators.filter((r) => r.process.running()).map((r) => r.hubPort!));

    const sysroot = join(work, "root");
    const inst = await runCommand(join(root, "packaging/systemd/install.sh"), [
      ...["--binary", agentBinary, "--root", sysroot, "--hub", `127.0.0.1:${hub.port}`],
      ...["--device", `${ns}/${device}`, "--hub-ca", join(input, "hub-ca.crt")],
      ...["--enrollment-token", join(input, "token"), "--allow", `echo=${echo.address}`],
    ]);
    assert.equal(inst.code, 0, inst.stderr);

    // No repository, no node_modules, no Node.js on PATH; / as its working folder, as under systemd.
    const unit = unitCommand(sysroot);
    const [command, ...args] = unit.argv;
    assert.equal(command, join(sysroot, "usr/local/bin/devicestreams-agent"));
    agent = spawn(command!, args, {
      cwd: "/",
      // Not in the unit: the default metrics port may be taken on this machine.
      env: { ...unit.env, PATH: "/usr/bin:/bin", DEVICESTREAMS_AGENT_METRICS_LISTEN: "127.0.0.1:0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    stopAfterTest({ stop: () => agent?.kill("SIGTERM") });
    agent.stdout!.on("data", (c: Buffer) => (agentLog += c));
    agent.stderr!.on("data", (c: Buffer) => (agentLog += c));
    // The process is the executable itself, not a Node.js running a script.
    assert.equal(readlinkSync(`/proc/${agent.pid}/exe`), command);

    await waitFor(
      `Device ${device} to show connected`,
      async () => {
        assert.equal(agent!.exitCode, null, `the agent exited:\n${agentLog}`);
        return (await sys.env.admin.get<Device>(objectPath(devices, ns, device))).status?.connected;
      },
      90_000,
    );
    // Enrolled: the key it made and the certificate the hub signed, in the state directory, 0600.
    for (const f of readdirSync(unit.stateDir)) assert.equal(statSync(join(unit.stateDir, f)).mode & 0o077, 0, f);

    const opened = await plugin(
      "open",
      device,
      "--service",
      "echo",
      "--name",
      "sea-echo",
      "-n",
      ns,
      "--timeout",
      "90s",
    );
    assert.equal(opened.code, 0, opened.stdout + opened.stderr);
    assert.match(opened.stdout, /connected: the stream carries connections now/);

    const connect = spawn(
      "kubectl",
      ["devicestream", "connect", "sea-echo", `--kubeconfig=${sys.userKubeconfig}`, "-n", ns, "-L", "127.0.0.1:0"],
      { env: { PATH: installedPath(), HOME: work }, stdio: ["ignore", "pipe", "pipe"] },
    );
    stopAfterTest({ stop: () => connect.kill("SIGTERM") });
    let out = "";
    connect.stdout!.on("data", (c: Buffer) => (out += c));
    connect.stderr!.on("data", (c: Buffer) => (out += c));
    const port = Number(
      await waitFor("connect -L to listen", () => /listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1], 60_000),
    );
    const bytes = 64 * 1024 * 1024;
    const transfer = echoTransfer(port, bytes, Number.MAX_SAFE_INTEGER, 256 * 1024);
    let deadline: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      transfer.outcome,
      new Promise<never>((_, reject) => {
        deadline = setTimeout(
          () => reject(new Error(`64 MiB not through in 180 s: ${JSON.stringify(transfer.progress())}`)),
          180_000,
        );
      }),
    ]).finally(() => clearTimeout(deadline));
    assert.equal(outcome.kind, "ok", `${outcome.detail}\n${out}`);
    connect.kill("SIGTERM");

    const closed = await plugin("close", "sea-echo", "-n", ns);
    assert.equal(closed.code, 0, closed.stderr);
  });
});
