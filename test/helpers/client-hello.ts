// TLS ClientHellos for the gateway's tests and benchmark: synthetic ones built field by field
// (any server name, any extensions, split into any records), and real ones captured from Node's
// TLS client.

import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { connect as tlsConnect } from "node:tls";

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b]);

export function extension(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), vec16(body)]);
}

export function sniExtension(name: string): Buffer {
  const n = Buffer.from(name, "latin1");
  return extension(0, vec16(Buffer.concat([Buffer.from([0]), u16(n.length), n])));
}

/** A ClientHello handshake message (type and length included). `extensions: null` omits the block. */
export function clientHelloMessage(o: { serverName?: string; extensions?: Buffer[] | null } = {}): Buffer {
  const exts =
    o.extensions === null ? null : [...(o.serverName ? [sniExtension(o.serverName)] : []), ...(o.extensions ?? [])];
  const body = Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 7), // random
    Buffer.from([0]), // session id
    vec16(Buffer.from([0x13, 0x01, 0x13, 0x02])),
    Buffer.from([1, 0]), // compression: null
    ...(exts ? [vec16(Buffer.concat(exts))] : []),
  ]);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

/** Handshake bytes as TLS records of at most `recordPayload` bytes each. */
export function records(handshake: Buffer, recordPayload = 16_384): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < handshake.length; at += recordPayload) {
    const part = handshake.subarray(at, at + recordPayload);
    out.push(Buffer.from([0x16, 0x03, 0x01]), u16(part.length), part);
  }
  return Buffer.concat(out);
}

/** A complete ClientHello in one record, as most clients send it. */
export function clientHello(serverName?: string): Buffer {
  return records(clientHelloMessage({ serverName }));
}

/** The first bytes Node's TLS client sends for `servername`, captured by a server that answers nothing. */
export async function realClientHello(servername: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const server = createServer((s) => {
    s.on("data", (c) => {
      chunks.push(c);
      s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => {
    const c = tlsConnect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false });
    c.on("error", () => resolve());
    c.on("close", () => resolve());
  });
  server.close();
  return Buffer.concat(chunks);
}
