import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { status } from "@grpc/grpc-js";
import { decodeFrame, encodeData } from "../proto/frames.ts";
import type { Logger } from "../runtime/log.ts";
import { FakeStream, tick } from "../test/helpers/fake-streams.ts";
import type { ServiceChoice } from "../transport/relay-client.ts";
import type { FrameCall } from "../transport/tcp-bridge.ts";
import { listenSocks, type SocksListener } from "./socks-listener.ts";

/** A logger that keeps its warnings, to check that every refusal says why. */
function recordingLog() {
  const lines: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (msg: string, fields?: Record<string, unknown>) => lines.push({ msg, fields }),
    error: () => {},
    child: () => log,
    enabled: () => false,
  };
  return { log, lines };
}

/** A local client: everything it received, and whether the listener closed it. */
async function client(port: number) {
  const s = connect(port, "127.0.0.1");
  await new Promise((r) => s.once("connect", r));
  const got = { bytes: Buffer.alloc(0), closed: false };
  s.on("data", (c: Buffer) => {
    got.bytes = Buffer.concat([got.bytes, c]);
  });
  s.on("close", () => {
    got.closed = true;
  });
  s.on("error", () => {});
  return { s, got };
}

const until = async (what: string, cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

const greetingAndRequest = (host: string, port: number) =>
  Buffer.concat([
    Buffer.from([5, 1, 0]),
    Buffer.from([5, 1, 0, 3, host.length]),
    Buffer.from(host),
    Buffer.from([port >> 8, port & 255]),
  ]);

describe("SOCKS5 / HTTP CONNECT listener", () => {
  let listener: SocksListener | undefined;
  let sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    sockets = [];
    await listener?.close();
    listener = undefined;
  });

  const start = async (o: { maxClients?: number; handshakeTimeoutMs?: number } = {}) => {
    const calls: Array<{ choice: ServiceChoice; call: FakeStream }> = [];
    const { log, lines } = recordingLog();
    listener = await listenSocks({
      host: "127.0.0.1",
      port: 0,
      open: (choice) => {
        const call = new FakeStream();
        calls.push({ choice, call });
        return call as unknown as FrameCall;
      },
      maxClients: o.maxClients ?? 100,
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? 5_000,
      log,
    });
    const open = async () => {
      const c = await client(listener!.port);
      sockets.push(c.s);
      return c;
    };
    return { calls, lines, open };
  };

  it("SOCKS5: replies success only once the relay paired the call, then carries bytes both ways", async () => {
    const { calls, open } = await start();
    const { s, got } = await open();
    // The request and early bytes in one write, as a client that does not wait might send them.
    s.write(Buffer.concat([greetingAndRequest("web", 80), Buffer.from("early ")]));
    await until("the tunnel to be asked for", () => calls.length === 1);
    assert.deepEqual(calls[0]!.choice, { service: "web", port: 80 });
    await tick();
    assert.deepEqual([...got.bytes], [5, 0], "the method reply only: no success before the relay says so");
    calls[0]!.call.emit("metadata");
    await until("the success reply", () => got.bytes.length === 12);
    assert.deepEqual([...got.bytes.subarray(2)], [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    s.write("late");
    const sent = () =>
      calls[0]!.call.written.map((f) => {
        const d = decodeFrame(f as Buffer);
        return d.kind === "data" ? d.data.toString() : "";
      });
    await until("both writes to reach the call", () => sent().join("") === "early late");
    calls[0]!.call.receive(encodeData(Buffer.from("answer")));
    await until("the answer", () => got.bytes.subarray(12).toString() === "answer");
  });

  it("HTTP CONNECT on the same port: 200 once paired; a relay refusal gets its status and the DS code", async () => {
    const { calls, open, lines } = await start();
    const ok = await open();
    ok.s.write("CONNECT ssh:22 HTTP/1.1\r\nHost: ssh:22\r\n\r\n");
    await until("the tunnel", () => calls.length === 1);
    calls[0]!.call.emit("metadata");
    await until("200", () => ok.got.bytes.toString() === "HTTP/1.1 200 Connection established\r\n\r\n");

    const no = await open();
    no.s.write("CONNECT vnc:5900 HTTP/1.1\r\n\r\n");
    await until("the second tunnel", () => calls.length === 2);
    calls[1]!.call.emit("status", {
      code: status.FAILED_PRECONDITION,
      details: 'DS_SERVICE_NOT_IN_STREAM: stream ns/s carries "ssh", not "vnc"',
      metadata: undefined,
    });
    await until("the refusal", () => no.got.closed);
    const text = no.got.bytes.toString();
    assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(text, /DS_SERVICE_NOT_IN_STREAM: stream ns\/s carries "ssh", not "vnc"\n$/);
    const line = lines.find((l) => l.fields?.reason === "DS_SERVICE_NOT_IN_STREAM");
    assert.equal(line?.msg, "local request refused");
    assert.equal(line?.fields?.request, "vnc:5900");
  });

  it("refuses an IP address with 0x08 and a log line, and never asks the relay", async () => {
    const { calls, open, lines } = await start();
    const { s, got } = await open();
    s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22]));
    await until("the refusal", () => got.closed);
    assert.deepEqual([...got.bytes], [5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert.equal(calls.length, 0);
    assert.equal(lines[0]?.fields?.reason, "DS_SOCKS_ADDRESS_NOT_SERVICE");
  });

  it("refuses other protocols: SOCKS4 with its own reject, anything else closed; both logged", async () => {
    const { open, lines } = await start();
    const four = await open();
    four.s.write(Buffer.from([4, 1, 0, 22, 127, 0, 0, 1, 0]));
    const tls = await open();
    tls.s.write(Buffer.from([0x16, 3, 1, 0, 10]));
    await until("both closed", () => four.got.closed && tls.got.closed);
    assert.deepEqual([...four.got.bytes], [0, 0x5b, 0, 0, 0, 0, 0, 0]);
    assert.equal(tls.got.bytes.length, 0);
    assert.match(String(lines.map((l) => l.fields?.detail)), /SOCKS4 request.*first byte 0x16/s);
  });

  it("closes a client that does not finish its request in time (HTTP gets a 408)", async () => {
    const { open, lines } = await start({ handshakeTimeoutMs: 100 });
    const silent = await open();
    const slow = await open();
    slow.s.write("CONNECT web:80 HTTP/1.1\r\n");
    const started = Date.now();
    await until("both closed", () => silent.got.closed && slow.got.closed);
    assert.ok(Date.now() - started < 2_000);
    assert.equal(silent.got.bytes.length, 0);
    assert.match(slow.got.bytes.toString(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(lines.some((l) => l.fields?.reason === "DS_SOCKS_HANDSHAKE_TIMEOUT"));
  });

  it("past --max-local-clients, a new client is refused in its protocol; the ones in place go on", async () => {
    const { calls, open, lines } = await start({ maxClients: 2 });
    const a = await open();
    const b = await open();
    a.s.write(greetingAndRequest("web", 80));
    await until("a's tunnel", () => calls.length === 1);
    const c = await open();
    c.s.write(greetingAndRequest("web", 80));
    await until("c refused", () => c.got.closed);
    assert.deepEqual([...c.got.bytes], [5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert.equal(calls.length, 1, "the refused client was never tunnelled");
    assert.ok(lines.some((l) => l.fields?.reason === "DS_SOCKS_CLIENT_LIMIT"));
    b.s.write(greetingAndRequest("ssh", 22));
    await until("b's tunnel", () => calls.length === 2);
    calls[0]!.call.emit("metadata");
    await until("a's success", () => a.got.bytes.length === 12);
  });

  it("a client that leaves while the tunnel is asked for cancels the call", async () => {
    const { calls, open } = await start();
    const { s } = await open();
    s.write(greetingAndRequest("web", 80));
    await until("the tunnel", () => calls.length === 1);
    s.destroy();
    await until("the call cancelled", () => calls[0]!.call.cancelled);
    await until("the place given back", () => listener!.clients === 0);
  });
});
