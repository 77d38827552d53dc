// Starts a stream's data plane as real processes on loopback: a relay, an agent serving an
// allow-list, and a client forwarding a local port, all over TLS with per-stream credentials.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type StaticStream, type StaticStreamOptions, writeStaticStream } from "../../cli/static-stream.ts";
import { ComponentProcess } from "./component-process.ts";

/** Waits for `pattern` in the process's output; if it never comes, stops the process before failing. */
async function announced(process: ComponentProcess, pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray> {
  try {
    return await process.waitFor(pattern, timeoutMs);
  } catch (err) {
    await process.stop();
    throw err;
  }
}

export interface Relay {
  process: ComponentProcess;
  address: string;
  metricsPort: number;
}

/** A relay process on loopback ports; `mode`: `--config …` (one stream) or `--streams-dir DIR` (a pool). */
export async function startRelayProcess(
  mode: string[],
  env: Record<string, string> = {},
  readyTimeoutMs?: number,
): Promise<Relay> {
  const process = new ComponentProcess(
    "relay",
    ["relay", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", ...mode],
    env,
  );
  const m = await announced(process, /ready grpcPort=(\d+) metricsPort=(\d+)/, readyTimeoutMs);
  return { process, address: `127.0.0.1:${m[1]}`, metricsPort: Number(m[2]) };
}

export function startRelay(stream: StaticStream, args: string[] = []): Promise<Relay> {
  const files = ["--config", stream.relayConfig, "--tls-cert", stream.relayCert, "--tls-key", stream.relayKey];
  return startRelayProcess([...files, ...args]);
}

export interface Agent {
  process: ComponentProcess;
  metricsPort: number;
}

export async function startAgent(
  stream: StaticStream,
  relayAddress: string,
  allow: string[],
  args: string[] = [],
  waitAttached = true,
): Promise<Agent> {
  const process = new ComponentProcess("agent", [
    "agent",
    "--relay",
    relayAddress,
    "--ca",
    stream.caCert,
    "--token-file",
    stream.destinationTokenFile,
    "--metrics-listen",
    "127.0.0.1:0",
    ...allow.flatMap((a) => ["--allow", a]),
    ...args,
  ]);
  const m = await announced(process, /ready metricsPort=(\d+)/);
  if (waitAttached) await announced(process, /attached to relay/);
  return { process, metricsPort: Number(m[1]) };
}

export interface Client {
  process: ComponentProcess;
  port: number;
}

export async function startClient(stream: StaticStream, relayAddress: string, args: string[] = []): Promise<Client> {
  const f = await startForwarder(stream, relayAddress, ["--local", "127.0.0.1:0", ...args], 1);
  return { process: f.process, port: f.ports[0]! };
}

export interface Forwarder {
  process: ComponentProcess;
  /** The port of each `listening on` line, in the order of the flags (-L ones first, then --socks5). */
  ports: number[];
}

/**
 * `devicestreams connect` with the caller's listeners (`-L …`, `--socks5 …`); resolves once all
 * of them listen. `listeners` is how many it should announce.
 */
export async function startForwarder(
  stream: StaticStream,
  relayAddress: string,
  args: string[],
  listeners: number,
): Promise<Forwarder> {
  const process = new ComponentProcess("connect", [
    "connect",
    "--relay",
    relayAddress,
    "--ca",
    stream.caCert,
    "--token-file",
    stream.sourceTokenFile,
    ...args,
  ]);
  const pattern = new RegExp(`(?:^listening on \\S+:\\d+.*\\n[^]*?){${listeners}}`, "m");
  await announced(process, pattern);
  const ports = [...process.logs.matchAll(/^listening on \S+:(\d+)/gm)].map((m) => Number(m[1]));
  return { process, ports };
}

/** The argv of a stdio-mode client, for ssh's ProxyCommand or a direct spawn. */
export function stdioClientArgs(stream: StaticStream, relayAddress: string): string[] {
  return ["connect", "--stdio", "--relay", relayAddress, "--ca", stream.caCert, "--token-file", stream.sourceTokenFile];
}

export interface DataPlane {
  stream: StaticStream;
  relay: Relay;
  agent: Agent;
  client: Client;
  processes(): ComponentProcess[];
  /** Every process's output, for a failing test's report. */
  logs(): string;
  stop(): Promise<void>;
}

export interface DataPlaneOptions extends Partial<StaticStreamOptions> {
  /** Allow-list entries of the agent, e.g. `web=127.0.0.1:8080`; the first names the stream's service by default. */
  allow: string[];
  relayArgs?: string[];
  agentArgs?: string[];
  clientArgs?: string[];
}

export async function startDataPlane(o: DataPlaneOptions): Promise<DataPlane> {
  const dir = mkdtempSync(join(tmpdir(), "ds-test-"));
  const started: ComponentProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  let stream: StaticStream, relay: Relay, agent: Agent, client: Client;
  try {
    stream = await writeStaticStream(dir, { service: o.service ?? o.allow[0]!.split("=")[0]!, ...o });
    relay = await startRelay(stream, o.relayArgs);
    started.push(relay.process);
    agent = await startAgent(stream, relay.address, o.allow, o.agentArgs);
    started.push(agent.process);
    client = await startClient(stream, relay.address, o.clientArgs);
    started.push(client.process);
  } catch (err) {
    // A part that did not start must not leave the others running.
    await stop();
    throw err;
  }
  return {
    stream,
    relay,
    agent,
    client,
    processes: () => [...started],
    logs: () => started.map((p) => `----- ${p.name} -----\n${p.logs}`).join("\n"),
    stop,
  };
}
