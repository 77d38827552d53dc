// The far end of every path (direct, tunnel, ssh -R, socat), as its own process so that its CPU
// and file descriptors are not the driver's (10,000 idle connections need 10,000 fds on each side).
// The first byte of a connection picks what it does:
//   U  sink that hashes: at the sender's FIN answers "<count> <sha256>"
//   C  sink that only counts: at FIN answers "<count>"
//   D  + 8-byte big-endian length: sends that much of the pattern, then FIN
//   E  echo (the round-trip peer)
//   I  answers "k" and then holds the connection idle (set-up time, idle connections)
// A connection that starts with a TLS record (0x16: the gateway path's ClientHello, replayed by
// the gateway) has that record skipped; the byte after it picks the job.
// Run: node bench/target.ts → prints "target listening on PORT".
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { patternAt } from "./pattern.ts";
import { killOnExit } from "./procs.ts";

function serve(s: Socket, mode: number, rest: Buffer): void {
  if (mode === 0x55 || mode === 0x43) {
    const hash = mode === 0x55 ? createHash("sha256") : undefined;
    let n = 0;
    const take = (c: Buffer) => {
      n += c.length;
      hash?.update(c);
    };
    take(rest);
    s.on("data", take);
    s.on("end", () => s.end(hash ? `${n} ${hash.digest("hex")}` : String(n)));
  } else if (mode === 0x45) {
    if (rest.length) s.write(rest);
    s.pipe(s);
  } else if (mode === 0x49) {
    s.write("k");
    s.on("end", () => s.end());
  } else if (mode === 0x44) {
    let header = rest;
    const start = () => {
      const total = Number(header.readBigUInt64BE(0));
      let sent = 0;
      const pump = () => {
        // Bounded by `total`; pauses at backpressure and resumes on 'drain'.
        while (sent < total) {
          const part = patternAt(sent, Math.min(256 * 1024, total - sent));
          sent += part.length;
          if (!s.write(part)) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    };
    if (header.length >= 8) start();
    else {
      const more = (c: Buffer) => {
        header = Buffer.concat([header, c]);
        if (header.length >= 8) {
          s.off("data", more);
          start();
        }
      };
      s.on("data", more);
    }
  } else {
    s.destroy();
  }
}

/** Skips one TLS record (header and payload), then serves by the next byte. */
function skipRecord(s: Socket, first: Buffer): void {
  let head = first;
  const next = () => {
    if (head.length < 5) return false;
    const end = 5 + head.readUInt16BE(3);
    if (head.length <= end) return false;
    serve(s, head[end]!, head.subarray(end + 1));
    return true;
  };
  if (next()) return;
  const more = (c: Buffer) => {
    head = Buffer.concat([head, c]);
    if (next()) s.off("data", more);
  };
  s.on("data", more);
}

export function runTarget(): void {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on("error", () => {});
    s.once("data", (c: Buffer) => (c[0] === 0x16 ? skipRecord(s, c) : serve(s, c[0]!, c.subarray(1))));
  });
  server.maxConnections = 50_000;
  server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => {
    process.stdout.write(`target listening on ${(server.address() as { port: number }).port}\n`);
  });
}

export interface Target {
  port: number;
  pid: number;
  stop(): void;
}

/** Starts the target as a child process on this Node.js and waits for its port. */
export async function startTarget(timeoutMs = 15_000): Promise<Target> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  killOnExit(child);
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`bench target did not start: ${out}`)), timeoutMs);
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /listening on (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => reject(new Error(`bench target exited with ${code}: ${out}`)));
  });
  return { port, pid: child.pid!, stop: () => child.kill("SIGKILL") };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runTarget();
