import assert from "node:assert/strict";
import {
  clientHello,
  clientHelloMessage,
  extension,
  realClientHello,
  records,
  sniExtension,
} from "../test/helpers/client-hello.ts";
import { ClientHelloError, ClientHelloReader, type HelloRefusal } from "./client-hello.ts";

/** Feeds `bytes` in pieces of `segment` bytes; the name, or the refusal. */
function read(
  bytes: Buffer,
  segment = bytes.length,
  max?: number,
): string | { refused: HelloRefusal; message: string } {
  const r = new ClientHelloReader(max);
  try {
    for (let at = 0; at < bytes.length; at += segment) {
      const out = r.push(bytes.subarray(at, at + segment));
      if (out.done) return out.serverName;
    }
    return { refused: "need-more" as HelloRefusal, message: "incomplete" };
  } catch (err) {
    assert.ok(err instanceof ClientHelloError, String(err));
    return { refused: err.reason, message: err.message };
  }
}

const refusal = (bytes: Buffer, segment?: number, max?: number) => {
  const r = read(bytes, segment, max);
  assert.equal(typeof r, "object", `expected a refusal, got the name ${String(r)}`);
  return r as { refused: HelloRefusal; message: string };
};

describe("gateway ClientHello reader", () => {
  it("reads the server name of Node's own ClientHello, whole and one byte at a time", async () => {
    const hello = await realClientHello("web.team-a.relay.example.com");
    assert.equal(read(hello), "web.team-a.relay.example.com");
    assert.equal(read(hello, 1), "web.team-a.relay.example.com");
    assert.equal(read(hello, 7), "web.team-a.relay.example.com");
  });

  it("reads a ClientHello split across TLS records, and across records and segments at once", () => {
    const msg = clientHelloMessage({ serverName: "Hub.Example.COM.", extensions: [extension(16, Buffer.alloc(300))] });
    for (const recordPayload of [1, 3, 50, 100]) {
      assert.equal(read(records(msg, recordPayload)), "hub.example.com", `records of ${recordPayload}`);
      assert.equal(read(records(msg, recordPayload), 13), "hub.example.com");
    }
  });

  it("reads a ClientHello followed by more bytes in the same segment, however many", () => {
    const bytes = Buffer.concat([clientHello("a.example.com"), Buffer.alloc(60_000, 0x17)]);
    assert.equal(read(bytes), "a.example.com");
  });

  it("waits for more while the ClientHello is incomplete", () => {
    const hello = clientHello("a.example.com");
    const r = new ClientHelloReader();
    assert.deepEqual(r.push(hello.subarray(0, 1)), { done: false });
    assert.deepEqual(r.push(hello.subarray(1, hello.length - 1)), { done: false });
    assert.ok(r.push(hello.subarray(hello.length - 1)).done);
  });

  it("refuses plain HTTP, SSH, SSLv2 and garbage at the first bytes", () => {
    assert.match(refusal(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).message, /HTTP request/);
    assert.match(refusal(Buffer.from("PRI * HTTP/2.0\r\n\r\n")).message, /HTTP/);
    assert.match(refusal(Buffer.from("SSH-2.0-OpenSSH_9.2\r\n")).message, /SSH/);
    // SSLv2-compatible ClientHello: 0x80 | length, then type 1.
    assert.match(refusal(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15])).message, /SSLv2/);
    assert.equal(refusal(Buffer.from([0x00, 0x01, 0x02])).refused, "not_tls");
    // A handshake byte, then not TLS's version.
    assert.equal(refusal(Buffer.from([0x16, 0x09, 0x09, 0x00, 0x10])).refused, "not_tls");
    // One byte is enough to refuse: the rest is never waited for.
    assert.equal(refusal(Buffer.from("G")).refused, "not_tls");
  });

  it("refuses a ClientHello without a server name, or without extensions at all", () => {
    assert.equal(refusal(clientHello()).refused, "no_server_name");
    assert.equal(refusal(records(clientHelloMessage({ extensions: null }))).refused, "no_server_name");
    // A server_name extension that holds another name type only.
    const other = extension(0, Buffer.from([0, 4, 9, 0, 1, 0x61]));
    assert.equal(refusal(records(clientHelloMessage({ extensions: [other] }))).refused, "no_server_name");
  });

  it("refuses a 16 KiB server name, and one that is not a DNS name", () => {
    const huge = "a".repeat(16 * 1024);
    // Too long for one record with the default bound: refused as too large before it is all read.
    assert.equal(refusal(records(clientHelloMessage({ serverName: huge }))).refused, "too_large");
    // With room for it, the name itself is refused.
    const big = refusal(records(clientHelloMessage({ serverName: huge })), 1000, 65_536);
    assert.equal(big.refused, "bad_server_name");
    assert.match(big.message, /16384 bytes/);
    assert.equal(refusal(clientHello("bad name.example.com")).refused, "bad_server_name");
    assert.equal(refusal(clientHello("a..b")).refused, "bad_server_name");
    assert.equal(refusal(clientHello(`${"a".repeat(64)}.example.com`)).refused, "bad_server_name");
  });

  it("refuses malformed ClientHellos with the field that is wrong", () => {
    const good = clientHelloMessage({ serverName: "a.example.com" });
    // Not a ClientHello (ServerHello, type 2).
    const serverHello = Buffer.from(good);
    serverHello[0] = 2;
    assert.match(refusal(records(serverHello)).message, /not a ClientHello/);
    // An extension length that runs past the end.
    const sni = sniExtension("a.example.com");
    const long = Buffer.from(sni);
    long.writeUInt16BE(500, 2);
    assert.equal(refusal(records(clientHelloMessage({ extensions: [long] }))).refused, "malformed");
    // The same extension twice.
    assert.match(refusal(records(clientHelloMessage({ extensions: [sni, sni] }))).message, /twice/);
    // An empty record, an alert record in the middle, an oversized record length.
    assert.match(refusal(Buffer.from([0x16, 3, 1, 0, 0])).message, /empty/);
    const split = records(good, 10);
    const alert = Buffer.concat([split.subarray(0, 15), Buffer.from([0x15, 3, 3, 0, 2, 2, 40])]);
    assert.match(refusal(alert).message, /record of type 21/);
    assert.match(refusal(Buffer.from([0x16, 3, 1, 0x40, 0x01])).message, /above TLS's 16384/);
    // A declared length above the bound is refused at once, before the bytes arrive.
    const declared = Buffer.from([0x16, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00]);
    assert.equal(refusal(declared).refused, "too_large");
    // A session id longer than 32 bytes.
    const sid = Buffer.from(good);
    sid[4 + 2 + 32] = 33;
    assert.match(refusal(records(sid)).message, /session id/);
    // A truncated body: the declared length covers bytes that are not there.
    const cut = Buffer.concat([Buffer.from([1, 0, 0, 10]), Buffer.from([3, 3, 1, 2, 3, 4, 5, 6, 7, 8])]);
    assert.match(refusal(records(cut)).message, /ends inside its random/);
  });

  it("bounds what it buffers however the bytes come", () => {
    // Handshake records that never complete a ClientHello (each a 1-byte fragment of a huge one).
    const msg = clientHelloMessage({ serverName: "a.example.com", extensions: [extension(16, Buffer.alloc(12_000))] });
    const r = refusal(records(msg, 1), 4096);
    assert.equal(r.refused, "too_large");
  });
});
