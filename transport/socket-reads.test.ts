import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { readSocket, sharedReadBuffer } from "./socket-reads.ts";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("socket reads through one shared buffer", () => {
  let server: Server;
  let port = 0;
  const payloads = new Map<number, Buffer>();
  before(async () => {
    // Each connection gets its own payload, named by the first byte it sends.
    server = createServer((s) => s.once("data", (b) => s.end(payloads.get(b[0]!)!)));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });
  after(() => server.close());

  /** What `s` reads to its end, copied as the bridge copies (at once, in the callback). */
  const readAll = (s: Socket) =>
    new Promise<Buffer>((resolve) => {
      const got: Buffer[] = [];
      readSocket(s, (chunk) => got.push(Buffer.from(chunk)));
      s.on("end", () => resolve(Buffer.concat(got)));
    });

  it("keeps each of several sockets' bytes its own, read concurrently", async () => {
    for (let i = 1; i <= 4; i++) payloads.set(i, randomBytes(3 * 1024 * 1024 + i));
    const got = await Promise.all(
      [1, 2, 3, 4].map((i) => {
        const s = connect({ port, host: "127.0.0.1", onread: sharedReadBuffer });
        s.pause();
        s.write(Buffer.from([i]));
        return readAll(s);
      }),
    );
    for (const [i, b] of got.entries()) assert.equal(sha256(b), sha256(payloads.get(i + 1)!), `socket ${i + 1}`);
  });

  it("keeps what a socket read before it was taken, and hands it on first", async () => {
    payloads.set(9, randomBytes(200_000));
    const s = connect({ port, host: "127.0.0.1", onread: sharedReadBuffer }); // not paused: it reads at once
    s.write(Buffer.from([9]));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(sha256(await readAll(s)), sha256(payloads.get(9)!));
  });
});
