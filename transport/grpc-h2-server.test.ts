// Interop: grpc-js clients (and raw HTTP/2 where grpc-js cannot misbehave on purpose) against our
// node:http2 gRPC server, with the relay's generated stubs (docs/adr/0002).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { connect as h2connect } from "node:http2";
import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { Client, type ClientDuplexStream, credentials, Metadata, type StatusObject, status } from "@grpc/grpc-js";
import { decodeFrame, encodeData, encodeFin } from "../proto/frames.ts";
import { relayServicePath } from "../proto/metadata.ts";
import { ConnectionGate } from "../runtime/connection-gate.ts";
import { flowControlWindowBytes, maxFrameBytes } from "../runtime/grpc-options.ts";
import "../runtime/tls.ts"; // TLS 1.3 floor, and no warning for an IP as server name
import { TestCA } from "../test/helpers/test-ca.ts";
import { GrpcH2Server } from "./grpc-h2-server.ts";
import type { H2ServerCall } from "./h2-server-call.ts";
import { MessageServerCall } from "./message-server-call.ts";
import { type AgentMessage, type RelayMessage, relayService } from "./relay-service.ts";

const ca = new TestCA();
const cert = ca.issue({ commonName: "relay", dnsNames: ["localhost"], ipv4Addresses: ["127.0.0.1"], usage: "server" });

type Handler = (call: H2ServerCall) => void;

async function serve(handlers: Record<string, Handler>, keepalive = { timeMs: 0, timeoutMs: 0 }) {
  const server = new GrpcH2Server({
    tls: { certPem: cert.certPem, keyPem: cert.keyPem },
    keepalive,
    streamWindowBytes: flowControlWindowBytes,
    maxFrameBytes: 64 * 1024,
    maxHeaderBytes: 32 * 1024,
    methods: Object.fromEntries(Object.entries(handlers).map(([m, h]) => [`${relayServicePath}/${m}`, h])),
  });
  const gate = await ConnectionGate.listen(server, {
    listen: "127.0.0.1:0",
    limits: { maxConnections: 100, maxPerSource: 100, handshakeTimeoutMs: 0, unauthenticatedTimeoutMs: 0 },
    onRefused: () => {},
  });
  return {
    port: gate.port,
    close: () => {
      gate.close();
      server.forceClose();
    },
  };
}

function grpcClient(port: number) {
  return new Client(`127.0.0.1:${port}`, credentials.createSsl(Buffer.from(ca.certPem)), {
    "grpc.max_receive_message_length": maxFrameBytes + 64,
  });
}

const connectCall = (c: Client, md = new Metadata(), options = {}): ClientDuplexStream<Buffer, Buffer> => {
  const m = relayService.connect;
  return c.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md, options);
};

const statusOf = (call: { on(e: "status", l: (s: StatusObject) => void): unknown }) =>
  new Promise<StatusObject>((resolve) => call.on("status", resolve));

describe("gRPC interop: grpc-js clients against our node:http2 server", () => {
  const stops: (() => void)[] = [];
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
  });
  const start = async (handlers: Record<string, Handler>, keepalive?: { timeMs: number; timeoutMs: number }) => {
    const s = await serve(handlers, keepalive);
    const client = grpcClient(s.port);
    stops.push(() => client.close(), s.close);
    return { ...s, client };
  };

  it("carries 16 MiB of frames each way byte-exact, framed as grpc-js frames them, and ends OK", async () => {
    const echo: Handler = (call) => {
      call.on("data", (chunk: Buffer) => {
        if (!call.write(chunk)) call.pause();
      });
      call.on("drain", () => call.resume());
      call.on("end", () => call.end());
      call.resume();
    };
    const { client } = await start({ Connect: echo });
    const call = connectCall(client);
    const sent = createHash("sha256");
    const got = createHash("sha256");
    let gotBytes = 0;
    call.on("data", (frame: Buffer) => {
      const f = decodeFrame(frame);
      if (f.kind === "data") {
        got.update(f.data);
        gotBytes += f.data.length;
      }
    });
    const done = statusOf(call);
    for (let i = 0; i < 256; i++) {
      const payload = randomBytes(64 * 1024);
      sent.update(payload);
      if (!call.write(encodeData(payload))) await new Promise((r) => call.once("drain", r));
    }
    call.write(encodeFin());
    call.end();
    const s = await done;
    assert.equal(s.code, status.OK, s.details);
    assert.equal(gotBytes, 16 * 1024 * 1024);
    assert.equal(got.digest("hex"), sent.digest("hex"));
  });

  for (const [when, writeFirst] of [
    ["trailers-only", false],
    ["trailers after messages", true],
  ] as const) {
    it(`status code and DS_* detail arrive intact (${when}), non-ASCII and % included`, async () => {
      const detail = "DS_TARGET_REFUSED: 100% refused — la cible a refusé ✓";
      const { client } = await start({
        Connect: (call) => {
          if (writeFirst) call.write(Buffer.from([0, 0, 0, 0, 2, 0x12, 0]));
          call.fail(status.FAILED_PRECONDITION, detail);
        },
      });
      const call = connectCall(client);
      const frames: Buffer[] = [];
      call.on("data", (f: Buffer) => frames.push(f));
      call.on("error", () => {});
      const s = await statusOf(call);
      assert.equal(s.code, status.FAILED_PRECONDITION);
      assert.equal(s.details, detail);
      assert.equal(frames.length, writeFirst ? 1 : 0);
    });
  }

  it("metadata reaches the call; the protocol's own headers do not", async () => {
    let seen: Metadata | undefined;
    const { client } = await start({
      Connect: (call) => {
        seen = call.metadata;
        call.end();
      },
    });
    const md = new Metadata();
    md.set("authorization", "Bearer t0ken");
    md.set("x-devicestreams-connection-id", "42");
    const s = await statusOf(connectCall(client, md, { deadline: Date.now() + 60_000 }));
    assert.equal(s.code, status.OK);
    assert.equal(seen?.get("authorization")[0], "Bearer t0ken");
    assert.equal(seen?.get("x-devicestreams-connection-id")[0], "42");
    assert.deepEqual(seen?.get("grpc-timeout"), []);
    assert.deepEqual(seen?.get("te"), []);
  });

  it("a cancelled grpc-js call is seen as cancelled by the server", async () => {
    let served: H2ServerCall | undefined;
    const cancelled = new Promise<void>((resolve) => {
      void start({
        Connect: (call) => {
          served = call;
          call.on("cancelled", resolve);
          call.resume();
        },
      }).then(({ client }) => {
        const call = connectCall(client);
        call.on("error", () => {});
        call.write(encodeData(Buffer.from("hi")));
        setTimeout(() => call.cancel(), 100);
      });
    });
    await cancelled;
    assert.ok(served?.cancelled);
  });

  it("an unknown method is UNIMPLEMENTED", async () => {
    const { client } = await start({});
    const call = client.makeBidiStreamRequest(
      `${relayServicePath}/Nope`,
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    call.on("error", () => {});
    const s = await statusOf(call);
    assert.equal(s.code, status.UNIMPLEMENTED);
  });

  it("an Attach message over its bound fails RESOURCE_EXHAUSTED before it is held", async () => {
    const { client } = await start({
      Attach: (call) => {
        const messages = new MessageServerCall<AgentMessage, RelayMessage>(
          call,
          {
            decode: (b) => relayService.attach.requestDeserialize(Buffer.from(b)),
            encode: (m) => relayService.attach.responseSerialize(m),
          },
          1024,
        );
        messages.on("data", (m: AgentMessage) =>
          messages.write({ streamInfo: { stream: m.hello?.agentVersion ?? "" } }),
        );
      },
    });
    const m = relayService.attach;
    const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
    const replies: RelayMessage[] = [];
    call.on("data", (r: RelayMessage) => replies.push(r));
    call.on("error", () => {});
    call.write({ hello: { agentVersion: "small" } });
    await new Promise((r) => setTimeout(r, 100));
    call.write({ hello: { agentVersion: "x".repeat(4096) } });
    const s = await statusOf(call);
    assert.equal(s.code, status.RESOURCE_EXHAUSTED);
    assert.match(s.details, /larger than max \(\d+ vs\. 1024\)/);
    assert.equal(replies[0]?.streamInfo?.stream, "small");
  });

  describe("raw HTTP/2 callers", () => {
    const raw = (port: number) => h2connect(`https://localhost:${port}`, { ca: ca.certPem, ALPNProtocols: ["h2"] });

    it("honours grpc-timeout: DEADLINE_EXCEEDED when the caller does not enforce it; a malformed one is INTERNAL", async () => {
      const { port } = await start({ Connect: (call) => call.resume() });
      const session = raw(port);
      stops.push(() => session.destroy());
      const ask = (timeout: string) =>
        new Promise<Record<string, unknown>>((resolve) => {
          const req = session.request({
            ":method": "POST",
            ":path": `${relayServicePath}/Connect`,
            "content-type": "application/grpc",
            te: "trailers",
            "grpc-timeout": timeout,
          });
          let headers: Record<string, unknown> = {};
          req.on("response", (h) => {
            headers = h;
          });
          req.on("trailers", (t) => resolve({ ...headers, ...t }));
          req.on("end", () => resolve(headers));
          req.on("error", () => {});
          req.resume();
        });
      const started = Date.now();
      const timed = await ask("200m");
      assert.equal(timed["grpc-status"], String(status.DEADLINE_EXCEEDED));
      assert.ok(Date.now() - started >= 180, "not before the deadline");
      const bad = await ask("soon");
      assert.equal(bad["grpc-status"], String(status.INTERNAL));
      assert.match(String(bad["grpc-message"]), /invalid grpc-timeout/);
    });

    it("answers what is not gRPC with HTTP 415, and keeps serving", async () => {
      const { port, client } = await start({ Connect: (call) => call.end() });
      const session = raw(port);
      stops.push(() => session.destroy());
      const code = await new Promise<unknown>((resolve) => {
        const req = session.request({ ":method": "GET", ":path": "/" });
        req.on("response", (h) => resolve(h[":status"]));
        req.resume();
      });
      assert.equal(code, 415);
      assert.equal((await statusOf(connectCall(client))).code, status.OK);
    });
  });

  it("keepalive: a caller that stops answering pings loses its session and its calls", async () => {
    let served: H2ServerCall | undefined;
    const { port } = await start(
      {
        Connect: (call) => {
          served = call;
          call.resume();
        },
      },
      { timeMs: 200, timeoutMs: 300 },
    );
    // A pass-through we can freeze: the server's pings stop reaching the client.
    let frozen = false;
    const peers: Socket[] = [];
    const proxy = createServer((inbound) => {
      const outbound = tcpConnect(port, "127.0.0.1");
      peers.push(inbound, outbound);
      inbound.pipe(outbound);
      outbound.on("data", (d) => {
        if (!frozen) inbound.write(d);
      });
      for (const s of [inbound, outbound]) s.on("error", () => {});
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    stops.push(() => {
      proxy.close();
      for (const s of peers) s.destroy();
    });
    const client = grpcClient((proxy.address() as { port: number }).port);
    stops.push(() => client.close());
    const call = connectCall(client);
    call.on("error", () => {});
    call.write(encodeData(Buffer.from("hello")));
    while (!served) await new Promise((r) => setTimeout(r, 20));
    const cancelled = new Promise<number>((resolve) => served!.once("cancelled", () => resolve(Date.now())));
    await new Promise((r) => setTimeout(r, 600)); // pings answered: the call lives
    assert.ok(!served.cancelled, "a caller that answers pings keeps its session");
    const frozenAt = Date.now();
    frozen = true;
    const at = await cancelled;
    assert.ok(at - frozenAt < 2_000, `session ended ${at - frozenAt} ms after the caller froze`);
  });
});
