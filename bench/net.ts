// Connecting on loopback, with a deadline, for the driver and for waiting on forwarders.
import { connect, type Socket } from "node:net";

export function dial(port: number, timeoutMs = 15_000, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", localAddress, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to 127.0.0.1:${port} timed out`));
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** True once something accepts a TCP connection on the port (a forwarder is listening). */
export async function accepts(port: number): Promise<boolean> {
  try {
    (await dial(port, 2_000)).destroy();
    return true;
  } catch {
    return false;
  }
}

/** Resolves with everything the peer sends until its FIN; rejects on error or after timeoutMs. */
export function readAll(s: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on("data", (c: Buffer) => {
      text += c.toString();
    });
    s.once("end", () => {
      clearTimeout(timer);
      resolve(text);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
