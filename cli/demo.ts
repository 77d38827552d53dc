// `npm start`: the whole data plane on loopback, no cluster. Starts a target (a small web
// server, or --target), a relay, an agent and a local port as separate processes, proves the
// tunnel with a request, prints how to try it by hand, and stays up until Ctrl-C.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { relayArgs } from "../relay/contract.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { freePort } from "../runtime/free-port.ts";
import { createLogger } from "../runtime/log.ts";
import { type OptionSpecs, parseOptions } from "../runtime/options.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { nodeFlags } from "./node-flags.ts";
import { writeStaticStream } from "./static-stream.ts";

const cli = fileURLToPath(new URL("./devicestreams.ts", import.meta.url));

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

export async function runDemo(argv: string[]): Promise<void> {
  const o = parseOptions("demo", "Runs relay, agent, a target and a local port on loopback.", demoOptionSpecs, argv);
  if (!o) return;
  const dir = mkdtempSync(join(tmpdir(), "devicestreams-demo-"));
  const children: ChildProcess[] = [];
  const nonce = randomBytes(8).toString("hex");
  const web = createServer((_req, res) => res.end(`hello from the device (demo ${nonce})\n`));
  let target = o.target;
  if (!target) {
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    target = `127.0.0.1:${(web.address() as { port: number }).port}`;
  }
  const service = o.target?.endsWith(":22") ? "ssh" : "web";
  const s = await writeStaticStream(dir, { stream: "demo/stream", service });
  const [relayPort, relayMetrics, agentMetrics] = [await freePort(), await freePort(), await freePort()];
  const relay = `127.0.0.1:${relayPort}`;
  const local = o.local;

  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) c.kill("SIGTERM");
    web.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const stop = async () => {
    process.stderr.write("\nstopping the demo\n");
    cleanup();
  };
  onShutdownSignals(createLogger("demo"), stop, async () => cleanup());

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
  start("connect", ["connect", ...connectArgs, "--local", String(local)], children);

  try {
    if (!o.target) {
      const body = await fetchThroughTunnel(`http://127.0.0.1:${local}/`, 15_000);
      if (!body.includes(nonce)) throw new DeviceStreamsError("DS_DEMO_FAILED", `unexpected answer: ${body}`);
      process.stdout.write(`\n✔ tunnel works: GET http://127.0.0.1:${local}/ answered "${body.trim()}"\n`);
    }
  } catch (err) {
    cleanup();
    throw err;
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
      "Ctrl-C stops everything.",
      "",
    ].join("\n"),
  );
  if (o["exit-after-check"]) {
    cleanup();
    return;
  }
  await new Promise(() => {});
}
