// Shared tools of the robustness tests (bad input, failures, flow control): reading a component's
// /metrics, a connection held open across a test case to prove it was not disturbed, and a raw
// gRPC client that speaks to the relay without our own client code.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { ChannelCredentials, Client, type ClientDuplexStream, Metadata, type StatusObject } from "@grpc/grpc-js";
import type { StaticStream } from "../../cli/static-stream.ts";
import { metadataKeys, relayServicePath } from "../../proto/metadata.ts";
import type { ComponentProcess } from "./component-process.ts";
import { collect, dial, roundTrip } from "./tcp-client.ts";
import { listen, sha256, type TcpTarget } from "./tcp-targets.ts";
import { StopWaiting, waitFor } from "./wait.ts";

/** One sample of a Prometheus metric (first line whose name and label text match), or undefined. */
export async function metric(port: number, name: string, labels = ""): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const body = await res.text();
  for (const line of body.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    const m = /^(\{[^}]*\})? (\S+)$/.exec(rest);
    if (!m) continue;
    if (labels && !(m[1] ?? "").includes(labels)) continue;
    return Number(m[2]);
  }
  return undefined;
}

/** Polls a metric until it equals `value` (metrics trail the log lines that announce a change). */
export async function waitForMetric(port: number, name: string, value: number, labels = "", timeoutMs = 10_000) {
  let last: number | undefined;
  const what = `${name}${labels ? `{${labels}}` : ""}`;
  try {
    await waitFor(
      `${what} to be ${value}`,
      async () => {
        last = await metric(port, name, labels);
        return last === value;
      },
      timeoutMs,
    );
  } catch {
    throw new Error(`${what} stayed ${last} for ${timeoutMs} ms, never ${value}`);
  }
}

/** Counts the times `pattern` matches in a process's output so far. */
export function countMatches(p: ComponentProcess, pattern: RegExp): number {
  return [...p.logs.matchAll(new RegExp(pattern.source, `${pattern.flags.replace("g", "")}g`))].length;
}

/** The client's log line for a tunnelled connection that failed. */
export const connectionFailed = "connection ended with an error";
/** The agent's log line for an attach attempt that failed. */
export const attachFailed = "cannot attach to relay; retrying";

/**
 * A log line `<message> ... reason="<code>: ..."`; group 1 is the reason as the log quoted it
 * (a JSON string, so quotes inside the reason are escaped).
 */
export function reasonPattern(message: string, code: string, flags = ""): RegExp {
  const escaped = message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`${escaped}[^\\n]*? reason=("${code}: (?:[^"\\\\\\n]|\\\\.)*")`, flags);
}

/** Waits for `<message> ... reason="<code>: ..."` in a process's log and returns the reason, unquoted. */
export async function waitForReason(
  p: ComponentProcess,
  message: string,
  code: string,
  timeoutMs = 15_000,
): Promise<string> {
  const m = await p.waitFor(reasonPattern(message, code), timeoutMs);
  return JSON.parse(m[1]!) as string;
}

/** A file holding a token, for `--token-file`. */
export function writeTokenFile(dir: string, name: string, token: string): string {
  const path = join(dir, name);
  writeFileSync(path, token, { mode: 0o600 });
  return path;
}

/**
 * A tunnelled connection to an echo target that stays open across a test case: `exchange()`
 * proves it still moves bytes both ways, `finish()` half-closes and checks the hash of
 * everything that came back against everything sent.
 */
export class HeldConnection {
  readonly socket: Socket;
  private readonly sent: Buffer[] = [];
  private received: Buffer[] = [];
  private receivedBytes = 0;
  private readonly done: ReturnType<typeof collect>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (c: Buffer) => {
      this.received.push(c);
      this.receivedBytes += c.length;
    });
    this.done = collect(socket, 60_000);
  }

  /** `greeting` is sent first and not expected back (a ModeTarget's `echo\n`). */
  static async open(port: number, greeting = ""): Promise<HeldConnection> {
    const socket = await dial(port);
    if (greeting) socket.write(greeting);
    const c = new HeldConnection(socket);
    await c.exchange();
    return c;
  }

  /** Sends `bytes` random bytes and waits (bounded) until the echo brought all of them back. */
  async exchange(bytes = 256 * 1024, timeoutMs = 10_000): Promise<void> {
    const chunk = randomBytes(bytes);
    this.sent.push(chunk);
    const want = this.sent.reduce((n, b) => n + b.length, 0);
    this.socket.write(chunk);
    await waitFor(
      `the held connection's echo (${this.receivedBytes} of ${want} bytes)`,
      () => {
        if (this.socket.destroyed) throw new StopWaiting("the held connection was closed");
        return this.receivedBytes >= want;
      },
      timeoutMs,
      10,
    );
  }

  async finish(): Promise<void> {
    this.socket.end();
    const out = await this.done;
    assert.equal(out.error, undefined, `the held connection ended with ${out.error?.message}`);
    assert.ok(out.ended, "the held connection ended with FIN");
    assert.equal(sha256(this.received), sha256(this.sent), "the held connection's bytes came back exact");
    this.received = [];
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A fresh connection through the tunnel still carries `bytes` random bytes exactly. */
export async function assertHealthy(port: number, bytes = 1024 * 1024, greeting = ""): Promise<void> {
  const payload = randomBytes(bytes);
  const out = await roundTrip(port, Buffer.concat([Buffer.from(greeting), payload]), 15_000);
  assert.equal(out.error, undefined, `a new connection failed: ${out.error?.message}`);
  assert.equal(sha256(out.data), sha256(payload), "a new connection's echo was not exact");
}

/** assertHealthy as a yes/no, for polling until a path comes back. */
export async function isHealthy(port: number, greeting = ""): Promise<boolean> {
  try {
    await assertHealthy(port, 64 * 1024, greeting);
    return true;
  } catch {
    return false;
  }
}

/** A TCP target that counts accepted connections (and echoes). */
export interface CountingTarget extends TcpTarget {
  accepted(): number;
}

export async function countingTarget(): Promise<CountingTarget> {
  let n = 0;
  const t = await listen((s) => {
    n++;
    s.pipe(s);
  });
  return Object.assign(t, { accepted: () => n });
}

/** Opens a connection and waits for it to end; it must be reset (no data, no FIN) within the deadline. */
export async function expectReset(port: number, timeoutMs = 15_000): Promise<void> {
  const s = await dial(port);
  const out = await collect(s, timeoutMs);
  assert.equal(out.ended, false, "the connection was closed cleanly, not reset");
  assert.equal(out.error?.code, "ECONNRESET", `expected ECONNRESET, got ${out.error?.code ?? "no error"}`);
}

export type RawCall = ClientDuplexStream<Buffer, Buffer>;

/**
 * A bare grpc-js client of the relay's service with no devicestreams code on its byte path and
 * grpc-js's default limits (no send limit), to send what our own client never would.
 */
export class RawRelayClient {
  private readonly client: Client;

  constructor(address: string, stream: StaticStream) {
    this.client = new Client(address, ChannelCredentials.createSsl(Buffer.from(stream.ca.certPem)), {
      "grpc.enable_retries": 0,
      // The certificate names localhost too; a name (not the IP) keeps Node from warning about SNI.
      "grpc.ssl_target_name_override": "localhost",
    });
  }

  call(method: "Connect" | "Accept", token: string, connectionId?: number): RawCall {
    const md = new Metadata();
    md.set(metadataKeys.authorization, `Bearer ${token}`);
    if (connectionId !== undefined) md.set(metadataKeys.connectionId, String(connectionId));
    const id = (b: Buffer) => b;
    return this.client.makeBidiStreamRequest(`${relayServicePath}/${method}`, id, id, md);
  }

  close(): void {
    this.client.close();
  }
}

export interface CallOutcome {
  status: StatusObject;
  frames: Buffer[];
}

/** Waits for a raw call's status (bounded), keeping the frames it received. */
export function callOutcome(call: RawCall, timeoutMs = 10_000): Promise<CallOutcome> {
  return new Promise((resolve, reject) => {
    const frames: Buffer[] = [];
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error(`the call got no status within ${timeoutMs} ms (${frames.length} frames received)`));
    }, timeoutMs);
    call.on("data", (f: Buffer) => frames.push(f));
    call.on("error", () => {});
    call.on("status", (status: StatusObject) => {
      clearTimeout(timer);
      resolve({ status, frames });
    });
  });
}

/**
 * One target for many behaviours, chosen per connection by its first line:
 * - `echo`: sends every byte back (and the FIN after the client's FIN);
 * - `flood`: sends pseudo-random bytes as fast as the connection takes them, never reads;
 * - `hash`: reads to FIN, answers the SHA-256 of what it read, closes;
 * - `stall`: like `hash`, but does not read at all until the test calls `resumeStalled()`;
 * - `reset`: resets the connection (RST) at once.
 */
export interface ModeConnection {
  mode: string;
  socket: Socket;
  /** How the tunnel ended this connection at the target: `fin` (clean) or the socket error's code. */
  ending: Promise<string>;
}

export interface ModeTarget extends TcpTarget {
  /** Every connection that named its mode, in arrival order. */
  connections: ModeConnection[];
  /** Connections in `stall` mode, in arrival order. */
  stalled: Socket[];
  /** Starts reading every stalled connection (they then behave as `hash`). */
  resumeStalled(): void;
  /** Bytes read so far by connections in `stall` mode. */
  stalledBytesRead(): number;
}

export async function modeTarget(): Promise<ModeTarget> {
  const stalled: Socket[] = [];
  const connections: ModeConnection[] = [];
  let stalledRead = 0;
  const floodChunk = randomBytes(64 * 1024);
  const hashUntilFin = (s: Socket, onBytes?: (n: number) => void) => {
    const h = createHash("sha256");
    s.on("data", (c: Buffer) => {
      h.update(c);
      onBytes?.(c.length);
    });
    s.on("end", () => s.end(h.digest("hex")));
  };
  const t = await listen((s) => {
    // Watched from the start: an ending must be seen even if the mode line never arrives.
    const ending = new Promise<string>((resolve) => {
      s.once("end", () => resolve("fin"));
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    let head = Buffer.alloc(0);
    const onHead = (c: Buffer) => {
      head = Buffer.concat([head, c]);
      const nl = head.indexOf(10);
      if (nl < 0) return;
      s.off("data", onHead);
      s.pause();
      const rest = head.subarray(nl + 1);
      if (rest.length) s.unshift(rest);
      const mode = head.subarray(0, nl).toString();
      connections.push({ mode, socket: s, ending });
      if (mode === "echo") {
        s.pipe(s);
      } else if (mode === "flood") {
        const more = () => {
          while (!s.destroyed && s.write(floodChunk));
        };
        s.on("drain", more);
        more();
      } else if (mode === "hash") {
        hashUntilFin(s);
        s.resume();
      } else if (mode.startsWith("gen ")) {
        const gen = generated(Number(mode.slice(4)));
        const more = () => {
          for (let c = gen.next(); !s.destroyed; c = gen.next()) {
            if (c.done) {
              s.end();
              return;
            }
            if (!s.write(c.value)) return;
          }
        };
        s.on("drain", more);
        more();
      } else if (mode === "reset") {
        s.resetAndDestroy();
      } else if (mode === "stall") {
        hashUntilFin(s, (n) => {
          stalledRead += n;
        });
        stalled.push(s);
      } else {
        s.destroy();
      }
    };
    s.on("data", onHead);
  });
  return Object.assign(t, {
    connections,
    stalled,
    resumeStalled: () => {
      for (const s of stalled) s.resume();
    },
    stalledBytesRead: () => stalledRead,
  });
}

const generatorBlock = randomBytes(1024 * 1024);

/**
 * `total` bytes in 1 MiB chunks, each a shared random block stamped with its index, so that a
 * reordered, lost or repeated chunk changes the hash, without holding the whole stream in memory.
 */
export function* generated(total: number): Generator<Buffer> {
  for (let i = 0, left = total; left > 0; i++) {
    const c = Buffer.from(generatorBlock.subarray(0, Math.min(left, generatorBlock.length)));
    c.writeUInt32BE(i, 0);
    left -= c.length;
    yield c;
  }
}

export function generatedSha256(total: number): string {
  const h = createHash("sha256");
  for (const c of generated(total)) h.update(c);
  return h.digest("hex");
}

/** Dials the tunnel and asks a ModeTarget for `mode` (`gen N`: the target sends generated(N), then FIN). */
export async function dialMode(
  port: number,
  mode: "echo" | "flood" | "hash" | "stall" | "reset" | `gen ${number}`,
): Promise<Socket> {
  const s = await dial(port);
  s.write(`${mode}\n`);
  return s;
}

/** Writes random bytes to a socket as fast as it takes them (respecting 'drain') until it closes. */
export function pump(socket: Socket, chunkBytes = 64 * 1024): { written: () => number } {
  const chunk = randomBytes(chunkBytes);
  let written = 0;
  const more = () => {
    while (!socket.destroyed && !socket.writableEnded) {
      written += chunk.length;
      if (!socket.write(chunk)) return;
    }
  };
  socket.on("drain", more);
  socket.on("error", () => {});
  more();
  return { written: () => written };
}

/** Counts bytes arriving on a socket. */
export function countIncoming(socket: Socket): () => number {
  let n = 0;
  socket.on("data", (c: Buffer) => {
    n += c.length;
  });
  return () => n;
}
