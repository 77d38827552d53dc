import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  Client,
  type ClientDuplexStream,
  credentials,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceDefinition,
} from "@grpc/grpc-js";
import { decodeFrame, encodeData } from "../proto/frames.ts";
import { framingCounts, installed } from "./grpc-framing.ts";
import { relayService } from "./relay-service.ts";

const echoService = { connect: relayService.connect } satisfies ServiceDefinition;

/** Sends each frame over a Connect call to an in-process server that writes every frame back. */
async function echo(frames: Buffer[], compression?: number): Promise<Buffer[]> {
  const server = new Server();
  server.addService(echoService, {
    connect: (call: ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", (f: Buffer) => call.write(f));
      call.on("end", () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const options = compression === undefined ? {} : { "grpc.default_compression_algorithm": compression };
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), options);
  try {
    const m = relayService.connect;
    const call: ClientDuplexStream<Buffer, Buffer> = client.makeBidiStreamRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
    );
    const got: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (f: Buffer) => got.push(Buffer.from(f)));
      call.on("status", (s) => (s.code === 0 ? resolve() : reject(new Error(s.details))));
    });
    for (const f of frames) call.write(f);
    call.end();
    await done;
    return got;
  } finally {
    client.close();
    server.forceShutdown();
  }
}

describe("in-place gRPC framing of tunnel frames", () => {
  const sizes = [0, 1, 100, 4090, 4096, 65536, 262144];

  it("is installed on this grpc-js version (if not, every frame is copied again: see grpc-framing.ts)", () => {
    assert.equal(installed, true);
  });

  it("carries frames of every size byte-exact, the server framing large ones in place", async () => {
    const payloads = sizes.map((n) => randomBytes(n));
    const frames = payloads.map((p) => encodeData(p));
    const before = { ...framingCounts };
    const got = await echo(frames);
    assert.equal(got.length, payloads.length);
    got.forEach((f, i) => {
      const d = decodeFrame(f);
      assert.ok(d.kind === "data" && d.data.equals(payloads[i]!), `frame ${i} (${sizes[i]} bytes) differs`);
    });
    // The server forwards in place what arrived in a buffer of its own (messages of 4 KiB and
    // more), and copies the small ones. (This grpc-js client copies; ours frames in place itself.)
    const large = frames.filter((f) => f.length + 5 >= Buffer.poolSize / 2).length;
    assert.equal(framingCounts.inPlace - before.inPlace, large);
    assert.equal(framingCounts.copied - before.copied, sizes.length - large);
  });

  it("never frames in place what a compressing client sent (the server copies), and stays byte-exact", async () => {
    const payloads = [randomBytes(70_000), Buffer.alloc(300_000, 7)];
    const before = { ...framingCounts };
    const gzip = 2;
    const got = await echo(
      payloads.map((p) => encodeData(p)),
      gzip,
    );
    got.forEach((f, i) => {
      const d = decodeFrame(f);
      assert.ok(d.kind === "data" && d.data.equals(payloads[i]!), `frame ${i} differs`);
    });
    // What a compressing client sent is decompressed into pooled buffers: the server copies it.
    assert.equal(framingCounts.inPlace - before.inPlace, 0);
  });
});
