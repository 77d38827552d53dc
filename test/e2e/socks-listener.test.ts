// The client's SOCKS5 / HTTP CONNECT listener against bad input and load, with relay, agent and
// client as real processes: a service the stream lacks, a port outside a range, an IP address in
// place of a name, silent clients, and 1,000 clients at once. Each is refused in its protocol
// with a log line saying why, quickly, and the connections already open carry on unharmed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type StaticStream, writeStaticStream } from "../../cli/static-stream.ts";
import { runCommand } from "../helpers/command.ts";
import {
  type Agent,
  type Forwarder,
  type Relay,
  startAgent,
  startForwarder,
  startRelay,
  stdioClientArgs,
} from "../helpers/dataplane.ts";
import { type HttpTarget, httpTarget, seededSha256 } from "../helpers/http-target.ts";
import { socks5Connect } from "../helpers/socks-client.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const maxLocalClients = 600;

/** One HTTP/1.0 request over an open tunnel; resolves with the whole answer. */
function httpOver(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => {
      got += c;
    });
    socket.once("end", () => resolve(got));
    socket.once("error", reject);
    socket.resume();
    socket.write(`GET ${path} HTTP/1.0\r\nHost: web\r\n\r\n`);
  });
}

describe("end to end: the SOCKS5 listener refuses bad input clearly and holds under 1,000 clients", function () {
  this.timeout(180_000);
  let dir: string;
  let web: HttpTarget;
  let echo: TcpTarget;
  let relay: Relay;
  let agent: Agent;
  let fwd: Forwarder;
  let socksPort = 0;
  let range: { first: number; last: number };
  let stream: StaticStream;

  before(async function () {
    this.timeout(60_000);
    dir = mkdtempSync(join(tmpdir(), "ds-socks-"));
    [web, echo] = await Promise.all([httpTarget(), echoServer()]);
    // A range service whose first port is the echo server's.
    range = { first: echo.port, last: Math.min(echo.port + 10, 65535) };
    stream = await writeStaticStream(join(dir, "stream"), { service: "web", services: ["web", "echo"] });
    relay = await startRelay(stream, ["--max-connections=2000"]);
    agent = await startAgent(stream, relay.address, [
      `web=${web.address}`,
      `echo=127.0.0.1:${range.first}-${range.last}`,
    ]);
    fwd = await startForwarder(
      stream,
      relay.address,
      [
        "-L",
        "127.0.0.1:0:web",
        "--socks5",
        "127.0.0.1:0",
        `--max-local-clients=${maxLocalClients}`,
        "--socks5-handshake-timeout=2s",
      ],
      2,
    );
    socksPort = fwd.ports[1]!;
  });
  after(async () => {
    await Promise.all([fwd?.process.stop(), agent?.process.stop(), relay?.process.stop()]);
    await Promise.all([web?.close(), echo?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state !== "failed") return;
    for (const p of [relay, agent, fwd])
      console.error(`----- ${p.process.name} -----\n${p.process.logs.slice(-10_000)}`);
  });

  const curl = (args: string[]) => runCommand("curl", ["-sS", "--max-time", "20", ...args], { timeoutMs: 30_000 });

  it("curl --socks5-hostname and HTTP CONNECT reach the service the host names", async () => {
    const viaSocks = await curl(["--socks5-hostname", `127.0.0.1:${socksPort}`, "http://web/hello?name=socks"]);
    assert.equal(viaSocks.stdout, "hello socks\n", viaSocks.stderr);
    const viaUrl = await curl(["-x", `socks5h://127.0.0.1:${socksPort}`, "http://web:8080/hello?name=h"]);
    assert.equal(viaUrl.stdout, "hello h\n", viaUrl.stderr);
    // -p: tunnel through the proxy with CONNECT, also for plain http://
    const viaConnect = await curl(["-p", "-x", `http://127.0.0.1:${socksPort}`, "http://web/hello?name=connect"]);
    assert.equal(viaConnect.stdout, "hello connect\n", viaConnect.stderr);
  });

  it("connect --stdio --service picks a service and port too (a ProxyCommand on a stream of several)", async () => {
    const cli = fileURLToPath(new URL("../../cli/devicestreams.ts", import.meta.url));
    const args = [cli, ...stdioClientArgs(stream, relay.address), "--service", `echo:${range.first}`];
    const r = await runCommand(process.execPath, args, { input: "ping over stdio", timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "ping over stdio");
  });

  it("a service not in the stream: 0x02 / 403 and a log line; the relay refuses before the device is asked", async () => {
    const r = await socks5Connect(socksPort, "vnc", 5900);
    r.socket.destroy();
    assert.equal(r.reply, 0x02);
    const c = await curl(["-p", "-x", `http://127.0.0.1:${socksPort}`, "http://vnc:5900/"]);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /CONNECT tunnel failed, response 403/);
    await fwd.process.waitFor(
      /local request refused .*protocol=socks5 request=vnc:5900 reason=DS_SERVICE_NOT_IN_STREAM/,
    );
    await fwd.process.waitFor(/local request refused .*protocol=http request=vnc:5900 reason=DS_SERVICE_NOT_IN_STREAM/);
    await relay.process.waitFor(/connection refused result=no_such_service reason=DS_SERVICE_NOT_IN_STREAM/);
    assert.doesNotMatch(agent.process.logs, /vnc/, "the device never heard of it");
  });

  it("a port outside a range service's ports: 0x02, refused by the agent (DS_PORT_OUT_OF_RANGE); one inside works", async () => {
    const outside = range.last + 1;
    const r = await socks5Connect(socksPort, "echo", outside);
    r.socket.destroy();
    assert.equal(r.reply, 0x02);
    await agent.process.waitFor(new RegExp(`dial refused .*reason=DS_PORT_OUT_OF_RANGE .*not ${outside}`));
    await fwd.process.waitFor(new RegExp(`request=echo:${outside} reason=DS_PORT_OUT_OF_RANGE`));
    const inside = await socks5Connect(socksPort, "echo", range.first);
    assert.equal(inside.reply, 0);
    inside.socket.resume();
    inside.socket.write("ping");
    const echoed = await new Promise<string>((resolve) => inside.socket.once("data", (c) => resolve(c.toString())));
    inside.socket.destroy();
    assert.equal(echoed, "ping");
  });

  it("an IP address instead of a name: 0x08 for SOCKS, 400 for HTTP CONNECT, and curl says why", async () => {
    const r = await socks5Connect(socksPort, { ipv4: "127.0.0.1" }, web.port);
    r.socket.destroy();
    assert.equal(r.reply, 0x08, "address type not supported");
    // curl --socks5 resolves the name itself and sends the address.
    const local = await curl(["--socks5", `127.0.0.1:${socksPort}`, "http://127.0.0.1/"]);
    assert.notEqual(local.code, 0);
    assert.match(local.stderr, /Can't complete SOCKS5 connection to 127\.0\.0\.1\. \(8\)/, "curl shows the reply, 8");
    const c = await curl(["-p", "-x", `http://127.0.0.1:${socksPort}`, `http://127.0.0.1:${web.port}/`]);
    assert.match(c.stderr, /response 400/);
    await fwd.process.waitFor(/local request refused .*reason=DS_SOCKS_ADDRESS_NOT_SERVICE detail=.*by name/);
  });

  it("silent clients are closed after the handshake timeout, while others are served", async () => {
    const silent = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const s = connect(socksPort, "127.0.0.1");
        s.on("error", () => {});
        const closed = new Promise<number>((resolve) => s.once("close", () => resolve(Date.now())));
        await new Promise((r) => s.once("connect", r));
        return closed;
      }),
    );
    const started = Date.now();
    const ok = await curl(["--socks5-hostname", `127.0.0.1:${socksPort}`, "http://web/hello?name=meanwhile"]);
    assert.equal(ok.stdout, "hello meanwhile\n");
    const closedAt = await Promise.all(silent);
    const latest = Math.max(...closedAt) - started;
    assert.ok(latest < 10_000, `the last silent client was closed ${latest} ms later`);
    await fwd.process.waitFor(/reason=DS_SOCKS_HANDSHAKE_TIMEOUT/);
  });

  it("1,000 clients at once: each served or refused within seconds; open connections are unharmed", async () => {
    // Already open before the flood: a tunnel waiting for its request, and a 64 MiB download.
    const before = await socks5Connect(socksPort, "web", 80);
    assert.equal(before.reply, 0);
    const download = curl([`http://127.0.0.1:${fwd.ports[0]}/stream?bytes=${64 * 1024 * 1024}&seed=flood`]);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 1000 }, () => socks5Connect(socksPort, "web", 80, 60_000)));
    const elapsed = Date.now() - started;
    const served = results.filter((r) => r.reply === 0);
    const refused = results.filter((r) => r.reply !== 0);
    const slowest = Math.max(...results.map((r) => r.ms));
    console.log(
      `      1,000 SOCKS clients: ${served.length} served, ${refused.length} refused in ${elapsed} ms (slowest reply ${slowest} ms)`,
    );
    // The tunnel opened before holds one of the listener's places.
    assert.equal(served.length, maxLocalClients - 1);
    assert.ok(
      refused.every((r) => r.reply === 0x01),
      "each refusal is a SOCKS reply (general failure), never a hang",
    );
    assert.ok(slowest < 30_000, `the slowest client waited ${slowest} ms`);
    await fwd.process.waitFor(/local request refused .*reason=DS_SOCKS_CLIENT_LIMIT/);
    for (const r of refused) r.socket.destroy();
    // Every served client's tunnel works, all at once.
    const answers = await Promise.all(served.map((r, i) => httpOver(r.socket, `/hello?name=c${i}`)));
    for (const [i, a] of answers.entries()) assert.match(a, new RegExp(`\\r\\n\\r\\nhello c${i}\\n$`));
    for (const r of served) r.socket.destroy();
    // The ones open before the flood carried on.
    assert.match(await httpOver(before.socket, "/hello?name=before"), /hello before\n$/);
    const d = await download;
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.stdoutSha256, seededSha256("flood", 64 * 1024 * 1024), "the download was not disturbed");
    // The places are given back: a new client is served again.
    await waitFor("the refused clients' places to be given back", async () => {
      const again = await socks5Connect(socksPort, "web", 80);
      again.socket.destroy();
      return again.reply === 0;
    });
  });
});
