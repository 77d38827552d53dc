// `npm start`: the whole data plane on loopback, no cluster. Starts a target (a small web
// server, or --target), a relay, an agent and a local port as separate processes, proves the
// tunnel with a request (or waits for the local port), prints how to try it by hand, and stays up
// until a signal; its children never outlive it.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { relayArgs } from "../relay/contract.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { freePort } from "../runtime/free-port.ts";
import { createLogger } from "../runtime/log.ts";
import { type OptionSpecs, parseOptions } from "../runtime/options.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { nodeFlags } from "./node-flags.ts";
import { writeStaticStream } from "./static-stream.ts";

// Beside this file: devicestreams.ts in a checkout, devicestreams.js in the npm package (dist/).
const cli = fileURLToPath(new URL(`./devicestreams${extname(import.meta.url)}`, import.meta.url));
/** The demo web server's answer carries it, so the check knows the answer came through the tunnel. */
const nonce = randomBytes(8).toString("hex");

export const demoOptionSpecs = {
  local: { kind: "integer", min: 0, max: 65535, description: "local port the tunnel listens on", default: "18080" },
  target: {
    kind: "address",
    description: "tunnel to this `host:port` instead of the demo web server (e.g. `127.0.0.1:22`)",
  },
  "exit-after-check": { kind: "boolean", description: "stop after the check instead of staying up" },
} satisfies OptionSpecs;

function start(name: string, args: string[], children: ChildProcess[]): ChildProcess {
  const child = spawn(process.execPath, [...nodeFlags, cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const prefix = (chunk: Buffer) =>
    chunk
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((l) => `  [${name}] ${l}\n`)
      .join("");
  child.stdout!.on("data", (c: Buffer) => process.stderr.write(prefix(c)));
  child.stderr!.on("data", (c: Buffer) => process.stderr.write(prefix(c)));
  children.push(child);
  return child;
}

async function fetchThroughTunnel(url: string, deadlineMs: number): Promise<string> {
  const deadline = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return await res.text();
      last = new Error(`HTTP ${res.status}: ${await res.text()}`);
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new DeviceStreamsError(
    "DS_DEMO_FAILED",
    `no answer through the tunnel: ${(last as Error)?.message}; see the logs above`,
  );
}

/** The port the connect child listens on, once it says so ("listening on host:port"). */
function listeningPort(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(
      () => fail(`the local port did not listen within ${timeoutMs} ms; see the logs above`),
      timeoutMs,
    );
    const onData = (c: Buffer) => {
      seen = (seen + c.toString()).slice(-1024);
      const m = /listening on \S+:(\d+)/.exec(seen);
      if (m) done(() => resolve(Number(m[1])));
    };
    const onExit = () => fail("the local port's process exited before it listened (is --local in use?); see above");
    const done = (f: () => void) => {
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      child.off("exit", onExit);
      f();
    };
    const fail = (why: string) => done(() => reject(new DeviceStreamsError("DS_DEMO_FAILED", why)));
    child.stdout!.on("data", onData);
    child.once("exit", onExit);
  });
}

export async function runDemo(argv: string[]): Promise<void> {
  const o = parseOptions("demo", "Runs relay, agent, a target and a local port on loopback.", demoOptionSpecs, argv);
  if (!o) return;
  const dir = mkdtempSync(join(tmpdir(), "devicestreams-demo-"));
  const children: ChildProcess[] = [];
  const web = createServer((_req, res) => res.end(`hello from the device (demo ${nonce})\n`));

  // The children are ours to stop, however the demo ends: a signal (Ctrl-C, `kill`, `timeout`, a
  // closed terminal), an error, or the check done. Registered before anything starts, so no
  // signal finds a child without its stopper.
  let cleaned: Promise<void> | undefined;
  const cleanup = () => {
    cleaned ??= (async () => {
      web.close();
      await stopChildren(children, 2_000);
      rmSync(dir, { recursive: true, force: true });
    })();
    return cleaned;
  };
  // The last resort (an uncaught error, process.exit): only synchronous work runs here.
  process.on("exit", () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const stop = async () => {
    process.stderr.write("\nstopping the demo\n");
    await cleanup();
  };
  onShutdownSignals(createLogger("demo"), stop, stop, ["SIGTERM", "SIGINT", "SIGHUP"]);

  try {
    await runChildren(o, dir, children, web);
  } catch (err) {
    await cleanup();
    throw err;
  }
  if (o["exit-after-check"]) {
    await cleanup();
    return;
  }
  await new Promise(() => {});
}

/** SIGTERM to each child still running; SIGKILL to those not gone after `graceMs` (a relay drains for 30 s). */
async function stopChildren(children: ChildProcess[], graceMs: number): Promise<void> {
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    running.map(
      (c) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => c.kill("SIGKILL"), graceMs);
          c.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          c.kill("SIGTERM");
        }),
    ),
  );
}

async function runChildren(
  o: { local: number; target?: string },
  dir: string,
  children: ChildProcess[],
  web: ReturnType<typeof createServer>,
): Promise<void> {
  let target = o.target;
  if (!target) {
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    target = `127.0.0.1:${(web.address() as { port: number }).port}`;
  }
  const service = o.target?.endsWith(":22") ? "ssh" : "web";
  const s = await writeStaticStream(dir, { stream: "demo/stream", service });
  const [relayPort, relayMetrics, agentMetrics] = [await freePort(), await freePort(), await freePort()];
  const relay = `127.0.0.1:${relayPort}`;

  const relayCommand = relayArgs({
    listen: relay,
    "metrics-listen": `127.0.0.1:${relayMetrics}`,
    config: s.relayConfig,
    "tls-cert": s.relayCert,
    "tls-key": s.relayKey,
  });
  start("relay", relayCommand, children);
  const common = ["--relay", relay, "--ca", s.caCert];
  start(
    "agent",
    [
      "agent",
      ...common,
      "--token-file",
      s.destinationTokenFile,
      "--allow",
      `${service}=${target}`,
      "--metrics-listen",
      `127.0.0.1:${agentMetrics}`,
    ],
    children,
  );
  const connectArgs = [...common, "--token-file", s.sourceTokenFile];
  const connect = start("connect", ["connect", ...connectArgs, "--local", String(o.local)], children);
  // Ready means the local port accepts: with --target there is no check through the tunnel, and
  // a user's ssh or nc runs as soon as the demo says so.
  const local = await listeningPort(connect, 60_000);

  if (!o.target) {
    const body = await fetchThroughTunnel(`http://127.0.0.1:${local}/`, 15_000);
    if (!body.includes(nonce)) throw new DeviceStreamsError("DS_DEMO_FAILED", `unexpected answer: ${body}`);
    process.stdout.write(`\n✔ tunnel works: GET http://127.0.0.1:${local}/ answered "${body.trim()}"\n`);
  }
  // The project's own Node.js 24: the `node` on a user's PATH may be older and cannot run .ts files.
  const proxy = `${process.execPath} ${nodeFlags.join(" ")} ${cli} connect --stdio ${connectArgs.join(" ")}`;
  process.stdout.write(
    [
      "",
      `device side:  agent --allow ${service}=${target}  (dials out to the relay at ${relay})`,
      `service side: 127.0.0.1:${local} -> relay -> agent -> ${target}`,
      "",
      "Try it by hand:",
      o.target ? `  nc 127.0.0.1 ${local}` : `  curl http://127.0.0.1:${local}/`,
      `  curl http://127.0.0.1:${relayMetrics}/metrics | grep devicestreams_relay   # relay metrics`,
      "To reach an SSH server the same way: npm start -- --target 127.0.0.1:22, then",
      `  ssh -o ProxyCommand='${proxy}' you@device`,
      "",
      `ready: 127.0.0.1:${local} -> relay -> agent -> ${target}`,
      "Ctrl-C stops everything.",
      "",
    ].join("\n"),
  );
}
