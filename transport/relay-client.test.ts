// Interop: our node:http2 relay client against a grpc-js server implementing Relay with the
// definitions of relay-service.ts (real TLS on loopback). Whatever grpc-js accepts and answers
// here, the relay served by grpc-js does; this is what keeps our wire honest (docs/adr/0002).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Metadata, type StatusObject, status } from "@grpc/grpc-js";
import { decodeFrame, encodeData, encodeFin } from "../proto/frames.ts";
import { metadataKeys } from "../proto/metadata.ts";
import {
  type AttachServerCall,
  type FrameServerCall,
  type StubHandlers,
  type StubRelay,
  startStubRelay,
} from "../test/helpers/grpc-relay-stub.ts";
import { callError, relayFromFlags } from "./call-error.ts";
import type { H2ClientCall } from "./h2-client-call.ts";
import { RelayClient } from "./relay-client.ts";

type Call = H2ClientCall<Buffer, Buffer>;
const keepalive = { timeMs: 10_000, timeoutMs: 5_000 };
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** What a call received and how it ended. */
function outcome(call: Call): Promise<{ status: StatusObject; data: Buffer; fin: boolean; events: string[] }> {
  const chunks: Buffer[] = [];
  const events: string[] = [];
  let fin = false;
  return new Promise((resolve) => {
    call.on("data", (f) => {
      const d = decodeFrame(f);
      if (d.kind === "data") chunks.push(Buffer.from(d.data));
      if (d.kind === "fin") fin = true;
    });
    call.on("error", () => events.push("error"));
    call.on("end", () => events.push("end"));
    call.on("status", (s) => {
      events.push("status");
      setImmediate(() => resolve({ status: s, data: Buffer.concat(chunks), fin, events }));
    });
  });
}

/** Writes `payload` as data frames with backpressure, then a Fin and the half-close. */
async function send(call: { write(b: Buffer): boolean; once(e: "drain", l: () => void): unknown }, payload: Buffer) {
  for (let off = 0; off < payload.length; off += 256 * 1024) {
    if (!call.write(encodeData(payload.subarray(off, off + 256 * 1024)))) {
      await new Promise<void>((r) => call.once("drain", r));
    }
  }
  call.write(encodeFin());
}

/** Reads a server call's data frames to its Fin. */
function receive(call: FrameServerCall): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    call.on("data", (f: Buffer) => {
      const d = decodeFrame(f);
      if (d.kind === "data") chunks.push(Buffer.from(d.data));
      if (d.kind === "fin") resolve(Buffer.concat(chunks));
    });
  });
}

describe("relay client (node:http2) against a grpc-js Relay server", function () {
  this.timeout(60_000);
  let stub: StubRelay;
  let handlers: StubHandlers = {};
  let client: RelayClient;

  before(async () => {
    stub = await startStubRelay({
      connect: (c) => handlers.connect?.(c),
      accept: (c) => handlers.accept?.(c),
      attach: (c) => handlers.attach?.(c),
    });
  });
  beforeEach(() => {
    client = new RelayClient({ address: stub.address, tls: { caPem: stub.ca.certPem }, keepalive });
  });
  afterEach(() => {
    client.close();
    handlers = {};
  });
  after(() => stub.close());

  it("carries 64 MiB each way byte-exact (SHA-256), with flow control on both sides", async () => {
    const up = randomBytes(64 * 1024 * 1024);
    const down = randomBytes(64 * 1024 * 1024);
    const serverGot = Promise.withResolvers<Buffer>();
    handlers.connect = (call) => {
      // The status ends the call for both sides: only after both directions carried their Fin.
      const received = receive(call);
      void Promise.all([received, send(call, down)]).then(([got]) => {
        serverGot.resolve(got);
        call.end();
      });
    };
    const call = client.connect("src_bytes");
    const done = outcome(call);
    await send(call, up);
    call.end();
    const got = await done;
    assert.equal(got.status.code, status.OK, got.status.details);
    assert.ok(got.fin);
    assert.equal(sha256(got.data), sha256(down), "the client received what the server sent");
    assert.equal(sha256(await serverGot.promise), sha256(up), "the server received what the client sent");
  });

  it("sends our metadata: the bearer token, the connection id, the agent version, a Kubernetes token per call", async () => {
    const seen: Metadata[] = [];
    const record = (call: FrameServerCall | AttachServerCall) => {
      seen.push(call.metadata);
      call.end();
    };
    handlers = { connect: record, accept: record, attach: record };
    const tokens = ["first", "second"];
    const perCall = { kubernetesToken: async () => tokens.shift()! };
    for (const call of [
      client.connect("src_token"),
      client.accept("dst_token", 42),
      client.attach("dst_token", "1.2.3"),
      client.connect(perCall),
      client.connect(perCall),
    ]) {
      call.on("error", () => {});
      assert.equal((await new Promise<StatusObject>((r) => call.on("status", r))).code, status.OK);
    }
    const get = (md: Metadata, key: string) => md.get(key)[0];
    assert.equal(get(seen[0]!, metadataKeys.authorization), "Bearer src_token");
    assert.match(String(get(seen[0]!, "user-agent")), /^devicestreams\//);
    assert.equal(get(seen[1]!, metadataKeys.authorization), "Bearer dst_token");
    assert.equal(get(seen[1]!, metadataKeys.connectionId), "42");
    assert.equal(get(seen[2]!, metadataKeys.agentVersion), "1.2.3");
    assert.deepEqual(
      seen.slice(3).map((md) => [get(md, metadataKeys.kubernetesToken), md.get(metadataKeys.authorization).length]),
      [
        ["first", 0],
        ["second", 0],
      ],
    );
  });

  it("half-close: the server reads our Fin and end, then still sends its reply to its own end", async () => {
    const reply = randomBytes(3 * 1024 * 1024);
    handlers.connect = (call) => {
      call.on("data", () => {});
      call.on("end", () => void send(call, reply).then(() => call.end()));
    };
    const call = client.connect("src_half");
    const done = outcome(call);
    call.write(encodeData(Buffer.from("request")));
    call.write(encodeFin());
    call.end();
    assert.ok(call.writableEnded);
    const got = await done;
    assert.equal(got.status.code, status.OK);
    assert.equal(sha256(got.data), sha256(reply));
    assert.deepEqual(got.events, ["status", "end"]);
  });

  const detail = "DS_DEVICE_REVOKED: Gerät „edge-1“ is 100% revoked; 50%20 stays as written";
  for (const trailersOnly of [false, true]) {
    it(`a failure status and its DS_ detail (non-ASCII, %) come through ${trailersOnly ? "a trailers-only response" : "trailers after messages"}`, async () => {
      handlers.connect = (call) => {
        if (!trailersOnly) call.write(encodeData(Buffer.from("before")));
        const md = new Metadata();
        md.set("x-trailer", "kept");
        setImmediate(() => call.emit("error", { code: status.PERMISSION_DENIED, details: detail, metadata: md }));
      };
      const call = client.connect("src_status");
      const got = await outcome(call);
      assert.equal(got.status.code, status.PERMISSION_DENIED);
      assert.equal(got.status.details, detail);
      assert.deepEqual(got.status.metadata.get("x-trailer"), ["kept"]);
      assert.equal(got.data.toString(), trailersOnly ? "" : "before");
      assert.deepEqual(got.events, ["error", "status", "end"]);
      const e = callError(got.status, relayFromFlags);
      assert.equal(e.code, "DS_DEVICE_REVOKED");
      assert.equal(e.message, detail.slice("DS_DEVICE_REVOKED: ".length));
      assert.equal(e.retryable, false);
    });
  }

  it("UNAVAILABLE with a DS_ detail is that code, retryable", async () => {
    handlers.connect = (call) => call.emit("error", { code: status.UNAVAILABLE, details: "DS_RELAY_DRAINING: go" });
    const got = await outcome(client.connect("src_drain"));
    const e = callError(got.status, relayFromFlags);
    assert.deepEqual([e.code, e.message, e.retryable], ["DS_RELAY_DRAINING", "go", true]);
  });

  it("a deadline goes out as grpc-timeout: the grpc-js server holds the call to it, and it ends DEADLINE_EXCEEDED", async () => {
    const server = Promise.withResolvers<{ deadline: number; cancelled: Promise<void> }>();
    handlers.connect = (call) => {
      call.on("data", () => {});
      const deadline = call.getDeadline();
      server.resolve({
        deadline: deadline instanceof Date ? deadline.getTime() : deadline,
        cancelled: new Promise((r) => call.once("cancelled", () => r())),
      });
    };
    const t0 = Date.now();
    const call = client.connect("src_deadline", undefined, { deadlineMs: 700 });
    const got = await outcome(call);
    assert.equal(got.status.code, status.DEADLINE_EXCEEDED);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 650 && elapsed < 3000, `ended after ${elapsed} ms`);
    const seen = await server.promise;
    assert.ok(
      Math.abs(seen.deadline - (t0 + 700)) < 400,
      `the server's deadline is ${seen.deadline - t0} ms after the call`,
    );
    await seen.cancelled;
  });

  it("cancel() resets the stream: the grpc-js server's call is cancelled, ours ends CANCELLED", async () => {
    const server = Promise.withResolvers<FrameServerCall>();
    handlers.connect = (call) => {
      call.on("data", () => server.resolve(call));
    };
    const call = client.connect("src_cancel");
    const done = outcome(call);
    call.write(encodeData(Buffer.from("x")));
    const serverCall = await server.promise;
    const cancelled = new Promise<void>((r) => serverCall.once("cancelled", () => r()));
    call.cancel();
    await cancelled;
    const got = await done;
    assert.deepEqual([got.status.code, got.status.details], [status.CANCELLED, "Cancelled on client"]);
  });

  it("a server that stops reading stops our writer with bounded memory; once it reads, every byte arrives", async () => {
    const reading = Promise.withResolvers<() => void>();
    const serverGot = Promise.withResolvers<Buffer>();
    handlers.connect = (call) => {
      // No 'data' listener yet: grpc-js reads nothing, so the stream's window fills.
      reading.resolve(() => receive(call).then(serverGot.resolve, serverGot.reject));
    };
    const call = client.connect("src_stall");
    const done = outcome(call);
    const payload = randomBytes(32 * 1024 * 1024);
    const frame = 64 * 1024;
    let written = 0;
    let stalledAt = -1;
    const startReading = await reading.promise;
    while (written < payload.length) {
      const ok = call.write(encodeData(payload.subarray(written, written + frame)));
      written += frame;
      if (ok) continue;
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000);
        call.once("drain", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (drained) continue;
      stalledAt = written;
      startReading();
      await new Promise<void>((r) => call.once("drain", r));
    }
    call.write(encodeFin());
    call.end();
    assert.ok(stalledAt > 0, "the writer was held back");
    // The stream's window, grpc-js's buffer of 16 messages and our stream's write buffer.
    assert.ok(stalledAt < 4 * 1024 * 1024, `${stalledAt} bytes were taken before the writer stopped`);
    assert.equal(sha256(await serverGot.promise), sha256(payload));
    handlers = {};
    call.cancel();
    await done;
  });

  it("Attach: messages are encoded and decoded with the generated code, both ways", async () => {
    const hello = Promise.withResolvers<unknown>();
    handlers.attach = (call) => {
      call.on("data", (m) => hello.resolve(m.hello));
      call.write({ streamInfo: { stream: "ns/s", service: "ssh", services: ["ssh", "web"], maxFrameBytes: 65536 } });
    };
    const call = client.attach("dst_attach", "1.0.0");
    call.on("error", () => {});
    const info = await new Promise<unknown>((r) => call.on("data", (m) => r({ ...m.streamInfo })));
    assert.deepEqual(info, { stream: "ns/s", service: "ssh", services: ["ssh", "web"], maxFrameBytes: 65536 });
    call.write({ hello: { agentVersion: "1.0.0", services: ["ssh"] } });
    assert.deepEqual({ ...((await hello.promise) as object) }, { agentVersion: "1.0.0", services: ["ssh"] });
    call.cancel();
  });
});

describe("relay client: a message over the limit", () => {
  it("fails the call RESOURCE_EXHAUSTED from its prefix, before its bytes are held", async () => {
    const stub = await startStubRelay(
      {
        attach: (call) => {
          call.on("data", () => {});
          call.write({ streamInfo: { stream: "x".repeat(1024 * 1024) } });
        },
      },
      { options: { "grpc.max_send_message_length": -1 } },
    );
    const client = new RelayClient({ address: stub.address, tls: { caPem: stub.ca.certPem }, keepalive });
    try {
      const call = client.attach("dst_big", "1.0.0");
      call.on("error", () => {});
      const s = await new Promise<StatusObject>((r) => call.on("status", r));
      assert.equal(s.code, status.RESOURCE_EXHAUSTED);
      assert.match(s.details, /^received message larger than max \(\d+ vs\. \d+\)$/);
    } finally {
      client.close();
      stub.close();
    }
  });
});
