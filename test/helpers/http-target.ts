// A real node:http server for tests to tunnel to. It records what it did, so a test can compare
// the server's view (bytes sent, bytes received, which TCP connection served a request) with
// what the client got:
//   GET  /hello?name=X             -> "hello X\n"
//   GET  /stream?bytes=N&seed=S    -> N bytes from seededChunks(S), chunked, with backpressure
//   POST /upload                   -> {"bytes":N,"sha256":"..."} of the request body
import { createCipheriv, createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { waitFor } from "./wait.ts";

export interface Served {
  method: string;
  url: string;
  /** Which accepted TCP connection carried the request (1, 2, ...). */
  connection: number;
  status: number;
  /** Body bytes sent (GET) or received (POST), and their SHA-256, once the exchange finished. */
  bytes: number;
  sha256: string;
  /** The response was written out completely (not aborted). */
  complete: boolean;
}

export interface HttpTarget {
  server: Server;
  port: number;
  address: string;
  url(path: string): string;
  served: Served[];
  /** The record of the request to `url` once it is complete; fails after the deadline. */
  waitServed(url: string, timeoutMs?: number): Promise<Served>;
  close(): Promise<void>;
}

const chunkBytes = 64 * 1024;

/**
 * A deterministic pseudo-random byte stream named by a seed (AES-256-CTR keystream): a server can
 * send hundreds of MiB that a test can recompute, without holding them.
 */
export function* seededChunks(seed: string, bytes: number): Generator<Buffer> {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkBytes);
  for (let left = bytes; left > 0; left -= chunkBytes) {
    yield cipher.update(left >= chunkBytes ? zeros : zeros.subarray(0, left));
  }
}

export function seededSha256(seed: string, bytes: number): string {
  const h = createHash("sha256");
  for (const c of seededChunks(seed, bytes)) h.update(c);
  return h.digest("hex");
}

function streamBody(res: ServerResponse, chunks: Generator<Buffer>, record: Served, done: () => void): void {
  const h = createHash("sha256");
  const pump = () => {
    for (let next = chunks.next(); !next.done; next = chunks.next()) {
      h.update(next.value);
      record.bytes += next.value.length;
      // Respect backpressure: a slow reader must slow this loop, not grow memory.
      if (!res.write(next.value)) {
        res.once("drain", pump);
        return;
      }
    }
    record.sha256 = h.digest("hex");
    res.end(done);
  };
  pump();
}

export async function httpTarget(): Promise<HttpTarget> {
  const served: Served[] = [];
  const sockets = new Set<Socket>();
  const connectionIds = new WeakMap<Socket, number>();
  let connections = 0;

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://target");
    const record: Served = {
      method: req.method ?? "",
      url: req.url ?? "",
      connection: connectionIds.get(req.socket) ?? 0,
      status: 200,
      bytes: 0,
      sha256: "",
      complete: false,
    };
    served.push(record);
    const finish = () => {
      record.complete = true;
    };
    const reply = (status: number, type: string, body: string) => {
      record.status = status;
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
      res.end(body, finish);
    };
    if (req.method === "GET" && url.pathname === "/hello") {
      reply(200, "text/plain", `hello ${url.searchParams.get("name") ?? "world"}\n`);
    } else if (req.method === "GET" && url.pathname === "/stream") {
      const bytes = Number(url.searchParams.get("bytes"));
      const seed = url.searchParams.get("seed") ?? "";
      if (!Number.isSafeInteger(bytes) || bytes < 0) return reply(400, "text/plain", "bytes must be a whole number\n");
      // No content-length: chunked transfer encoding, the body is streamed as it is made.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      streamBody(res, seededChunks(seed, bytes), record, finish);
    } else if (req.method === "POST" && url.pathname === "/upload") {
      const h = createHash("sha256");
      req.on("data", (c: Buffer) => {
        h.update(c);
        record.bytes += c.length;
      });
      req.on("end", () => {
        record.sha256 = h.digest("hex");
        reply(200, "application/json", `${JSON.stringify({ bytes: record.bytes, sha256: record.sha256 })}\n`);
      });
    } else {
      reply(404, "text/plain", `no route for ${req.method} ${url.pathname}\n`);
    }
  };

  const server = createServer(handle);
  server.on("connection", (s: Socket) => {
    connectionIds.set(s, ++connections);
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    served,
    waitServed: (url, timeoutMs = 5_000) =>
      waitFor(
        `the HTTP target to complete ${url}`,
        () => served.find((s) => s.url === url && s.complete),
        timeoutMs,
        10,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; it served: ${JSON.stringify(served)}`);
      }),
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
