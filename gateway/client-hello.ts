// Reads the server name (SNI) from the first bytes of a TLS connection without decrypting
// anything: the record headers, the ClientHello's fixed fields and its extension list, nothing
// more. Bytes may arrive in any number of TCP segments and the ClientHello may span several TLS
// records; what is buffered is bounded, and anything that is not a well-formed ClientHello is
// refused with a reason (a bounded set, for metrics) and a message naming what was wrong.
import { DeviceStreamsError } from "../runtime/errors.ts";

/** Why a connection's first bytes were refused; the `reason` label of the gateway's counters. */
export type HelloRefusal = "not_tls" | "malformed" | "too_large" | "no_server_name" | "bad_server_name";

/** The DS_* code each refusal is logged with. */
export const helloCodes = {
  not_tls: "DS_GATEWAY_NOT_TLS",
  malformed: "DS_GATEWAY_BAD_CLIENT_HELLO",
  too_large: "DS_GATEWAY_BAD_CLIENT_HELLO",
  no_server_name: "DS_GATEWAY_NO_SERVER_NAME",
  bad_server_name: "DS_GATEWAY_NO_SERVER_NAME",
} as const satisfies Record<HelloRefusal, string>;

export class ClientHelloError extends DeviceStreamsError {
  readonly reason: HelloRefusal;
  constructor(reason: HelloRefusal, message: string) {
    super(helloCodes[reason], message);
    this.reason = reason;
  }
}

const recordHeaderBytes = 5;
/** RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes. */
const maxRecordPayload = 16_384;
const contentHandshake = 0x16;
const handshakeClientHello = 0x01;
const extServerName = 0x0000;
const nameTypeHostName = 0x00;

/** What the first bytes of a connection that is not TLS look like, for the log line. */
function notTls(first: Buffer): ClientHelloError {
  const b0 = first[0]!;
  // SSLv2-compatible ClientHello: 2-byte length with the high bit set, then message type 1.
  if (b0 & 0x80 && first.length >= 3 && first[2] === 0x01) {
    return new ClientHelloError("not_tls", "an SSLv2-format ClientHello; only TLS 1.2 and 1.3 are routed");
  }
  const text = first.subarray(0, 8).toString("latin1");
  if (/^[A-Z]{3,7} /.test(text) || text.startsWith("PRI * H")) {
    return new ClientHelloError(
      "not_tls",
      `plain-text bytes (${JSON.stringify(text.split(" ")[0])}, an HTTP request?); dial the gateway with TLS`,
    );
  }
  if (text.startsWith("SSH-")) return new ClientHelloError("not_tls", "an SSH greeting; the gateway routes TLS only");
  return new ClientHelloError(
    "not_tls",
    `first byte 0x${b0.toString(16).padStart(2, "0")} is not a TLS handshake record (0x16)`,
  );
}

export type HelloResult = { done: false } | { done: true; serverName: string };

/**
 * Feed it a connection's bytes as they come: `push` answers `{ done: false }` while more are
 * needed, the server name once the ClientHello is complete, or throws a ClientHelloError. It keeps
 * a copy only of what it needs to parse; the caller keeps the chunks themselves to replay them.
 */
export class ClientHelloReader {
  /** The bytes so far: the first chunk itself while it is the only one (no copy in the common case). */
  private buf: Buffer = Buffer.alloc(0);
  private size = 0;
  /** Offset of the next record header not yet read. */
  private next = 0;
  /** The handshake-layer bytes (record payloads) so far, as views into `buf`. */
  private fragments: Array<[number, number]> = [];
  private handshakeBytes = 0;
  /** 4 + the ClientHello's declared length, once its header has arrived. */
  private needed = -1;

  private readonly maxBytes: number;

  /** `maxBytes` bounds everything buffered, record headers included (default: one full record). */
  constructor(maxBytes = maxRecordPayload + recordHeaderBytes) {
    this.maxBytes = maxBytes;
  }

  push(chunk: Buffer): HelloResult {
    if (this.size + chunk.length > this.maxBytes) {
      // Only what fits is kept; the check below reports the real cause if it lies in those bytes.
      chunk = chunk.subarray(0, this.maxBytes - this.size);
      this.append(chunk);
      const r = this.scan();
      if (r.done) return r;
      throw new ClientHelloError(
        "too_large",
        `no complete ClientHello within ${this.maxBytes} bytes (a ClientHello this large is not one a TLS library sends)`,
      );
    }
    this.append(chunk);
    return this.scan();
  }

  private append(chunk: Buffer): void {
    if (this.size === 0) {
      this.buf = chunk;
      this.size = chunk.length;
      return;
    }
    if (this.buf.length - this.size < chunk.length) {
      // Grow by doubling up to the bound: amortized linear however small the segments.
      const grown = Buffer.allocUnsafe(
        Math.min(this.maxBytes, Math.max(2 * this.buf.length, this.size + chunk.length)),
      );
      this.buf.copy(grown, 0, 0, this.size);
      this.buf = grown;
    }
    chunk.copy(this.buf, this.size);
    this.size += chunk.length;
  }

  private scan(): HelloResult {
    const b = this.buf;
    if (this.size >= 1 && b[0] !== contentHandshake) throw notTls(b.subarray(0, this.size));
    while (this.next + recordHeaderBytes <= this.size) {
      const at = this.next;
      const type = b[at]!;
      if (type !== contentHandshake) {
        throw new ClientHelloError(
          "malformed",
          `record of type ${type} before the ClientHello was complete (expected handshake records only)`,
        );
      }
      if (b[at + 1] !== 0x03 || b[at + 2]! > 0x04) {
        if (at === 0) throw notTls(b.subarray(0, this.size));
        throw new ClientHelloError("malformed", `record version 0x${b.readUInt16BE(at + 1).toString(16)} is not TLS`);
      }
      const length = b.readUInt16BE(at + 3);
      if (length === 0) throw new ClientHelloError("malformed", "an empty handshake record");
      if (length > maxRecordPayload) {
        throw new ClientHelloError("malformed", `a record of ${length} bytes, above TLS's ${maxRecordPayload}`);
      }
      if (at + recordHeaderBytes + length > this.size) break;
      this.fragments.push([at + recordHeaderBytes, at + recordHeaderBytes + length]);
      this.handshakeBytes += length;
      this.next = at + recordHeaderBytes + length;
      if (this.needed < 0 && this.handshakeBytes >= 4) {
        const head = this.handshake(4);
        if (head[0] !== handshakeClientHello) {
          throw new ClientHelloError("malformed", `handshake message type ${head[0]}, not a ClientHello (1)`);
        }
        this.needed = 4 + head.readUIntBE(1, 3);
        if (this.needed > this.maxBytes) {
          throw new ClientHelloError(
            "too_large",
            `the ClientHello declares ${this.needed - 4} bytes, above the gateway's limit of ${this.maxBytes}`,
          );
        }
      }
      if (this.needed >= 0 && this.handshakeBytes >= this.needed) {
        return { done: true, serverName: serverNameOf(this.handshake(this.needed)) };
      }
    }
    return { done: false };
  }

  /** The first `n` handshake bytes: a view when one record holds them, else a copy of the pieces. */
  private handshake(n: number): Buffer {
    const [s0, e0] = this.fragments[0]!;
    if (e0 - s0 >= n) return this.buf.subarray(s0, s0 + n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const [s, e] of this.fragments) {
      filled += this.buf.copy(out, filled, s, Math.min(e, s + n - filled));
      if (filled === n) break;
    }
    return out;
  }
}

/** A cursor over the ClientHello that refuses to read past the end of what it was given. */
class Fields {
  private readonly b: Buffer;
  private at: number;
  private readonly end: number;
  constructor(b: Buffer, at: number, end: number) {
    this.b = b;
    this.at = at;
    this.end = end;
  }
  private need(n: number, what: string): void {
    if (this.at + n > this.end) throw new ClientHelloError("malformed", `the ClientHello ends inside its ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.b[this.at++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.b.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  skip(n: number, what: string): void {
    this.need(n, what);
    this.at += n;
  }
  /** A sub-cursor over the next `n` bytes (a length-prefixed vector). */
  vector(n: number, what: string): Fields {
    this.need(n, what);
    const v = new Fields(this.b, this.at, this.at + n);
    this.at += n;
    return v;
  }
  get left(): number {
    return this.end - this.at;
  }
  text(n: number): string {
    return this.b.toString("latin1", this.at, this.at + n);
  }
}

/** A host name as RFC 6066 allows it: ASCII letters, digits, '-', '_' and dots, labels of 1–63. */
const hostName = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** The server_name of a complete ClientHello handshake message (type and length included). */
export function serverNameOf(msg: Buffer): string {
  const f = new Fields(msg, 4, msg.length);
  const version = f.u16("version");
  if (version >> 8 !== 0x03) {
    throw new ClientHelloError("malformed", `ClientHello version 0x${version.toString(16)} is not TLS`);
  }
  f.skip(32, "random");
  const sessionId = f.u8("session id length");
  if (sessionId > 32) throw new ClientHelloError("malformed", `a session id of ${sessionId} bytes (at most 32)`);
  f.skip(sessionId, "session id");
  const suites = f.u16("cipher suites length");
  if (suites < 2 || suites % 2) throw new ClientHelloError("malformed", `a cipher suite list of ${suites} bytes`);
  f.skip(suites, "cipher suites");
  const compressions = f.u8("compression methods length");
  if (compressions < 1) throw new ClientHelloError("malformed", "no compression methods");
  f.skip(compressions, "compression methods");
  if (f.left === 0) throw new ClientHelloError("no_server_name", "a ClientHello without extensions, so no server name");
  const extensions = f.vector(f.u16("extensions length"), "extensions");
  if (f.left !== 0) throw new ClientHelloError("malformed", `${f.left} bytes after the ClientHello's extensions`);
  const seen = new Set<number>();
  let name: string | undefined;
  while (extensions.left > 0) {
    const type = extensions.u16("extension type");
    const body = extensions.vector(extensions.u16("extension length"), "extension");
    if (seen.has(type)) throw new ClientHelloError("malformed", `extension ${type} appears twice`);
    seen.add(type);
    if (type === extServerName) name = readServerName(body);
  }
  if (name === undefined) {
    throw new ClientHelloError(
      "no_server_name",
      "the ClientHello names no server (no SNI): dial the gateway by name, or pass --server-name",
    );
  }
  return name;
}

function readServerName(ext: Fields): string {
  const list = ext.vector(ext.u16("server name list length"), "server name list");
  if (ext.left !== 0) throw new ClientHelloError("malformed", "bytes after the server name list");
  let name: string | undefined;
  while (list.left > 0) {
    const type = list.u8("server name type");
    const length = list.u16("server name length");
    if (type === nameTypeHostName) {
      if (name !== undefined) throw new ClientHelloError("malformed", "two host names in one server_name extension");
      if (length > 253) {
        throw new ClientHelloError("bad_server_name", `a server name of ${length} bytes (a DNS name has at most 253)`);
      }
      const text = list.vector(length, "server name").text(length).toLowerCase();
      name = text.endsWith(".") ? text.slice(0, -1) : text;
      if (!hostName.test(name)) {
        throw new ClientHelloError(
          "bad_server_name",
          `server name ${JSON.stringify(name.slice(0, 64))} is not a DNS name`,
        );
      }
    } else {
      list.skip(length, "server name");
    }
  }
  if (name === undefined) throw new ClientHelloError("no_server_name", "the server_name extension holds no host name");
  return name;
}
