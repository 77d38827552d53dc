import assert from "node:assert/strict";
import { parseConnect, response } from "./http-connect.ts";
import { socksReply, tunnelRefusal } from "./proxy-request.ts";
import { parseGreeting, parseRequest, reply } from "./socks5.ts";

/** A SOCKS5 CONNECT request for a domain name. */
const domainRequest = (host: string, port: number, cmd = 1) =>
  Buffer.concat([
    Buffer.from([5, cmd, 0, 3, host.length]),
    Buffer.from(host, "latin1"),
    Buffer.from([port >> 8, port & 255]),
  ]);

describe("SOCKS5 and HTTP CONNECT requests", () => {
  it("a greeting: waits for all of it, accepts only 'no authentication'", () => {
    assert.deepEqual(parseGreeting(Buffer.from([5])), { kind: "more" });
    assert.deepEqual(parseGreeting(Buffer.from([5, 2, 0])), { kind: "more" });
    assert.deepEqual(parseGreeting(Buffer.from([5, 2, 2, 0])), { kind: "done", value: { acceptable: true }, used: 4 });
    assert.deepEqual(parseGreeting(Buffer.from([5, 1, 2])), { kind: "done", value: { acceptable: false }, used: 3 });
    const bad = parseGreeting(Buffer.from([5, 0]));
    assert.ok(bad.kind === "refused" && bad.refusal.code === "DS_SOCKS_REQUEST_INVALID");
  });

  it("a CONNECT to a name picks the service and the port, in pieces or whole, and says how much it used", () => {
    const whole = Buffer.concat([domainRequest("ftp", 30005), Buffer.from("early bytes")]);
    for (let cut = 0; cut < 10; cut++)
      assert.deepEqual(parseRequest(whole.subarray(0, cut)), { kind: "more" }, `${cut}`);
    assert.deepEqual(parseRequest(whole), { kind: "done", value: { service: "ftp", port: 30005 }, used: 10 });
    assert.deepEqual(parseRequest(domainRequest("Web.", 80)), {
      kind: "done",
      value: { service: "web", port: 80 },
      used: 11,
    });
    assert.deepEqual(parseRequest(domainRequest("ssh", 0)), { kind: "done", value: { service: "ssh" }, used: 10 });
  });

  it("refuses an address (IPv4, IPv6, or written as a name) with 0x08 and says to send the name", () => {
    const v4 = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 22]);
    const v6 = Buffer.concat([Buffer.from([5, 1, 0, 4]), Buffer.alloc(16), Buffer.from([0, 22])]);
    for (const req of [v4, v6, domainRequest("127.0.0.1", 22), domainRequest("::1", 22)]) {
      const r = parseRequest(req);
      assert.ok(r.kind === "refused", req.toString("hex"));
      assert.equal(r.refusal.socks, socksReply.addressTypeNotSupported);
      assert.equal(r.refusal.code, "DS_SOCKS_ADDRESS_NOT_SERVICE");
      assert.match(r.refusal.message, /by name: ask for the service as the host \(curl --socks5-hostname/);
    }
  });

  it("refuses BIND and UDP with 0x07, and a name that cannot be a service with 0x02", () => {
    for (const cmd of [2, 3]) {
      const r = parseRequest(domainRequest("ssh", 22, cmd));
      assert.ok(r.kind === "refused" && r.refusal.socks === socksReply.commandNotSupported);
    }
    const r = parseRequest(domainRequest("www.example.com", 443));
    assert.ok(r.kind === "refused");
    assert.equal(r.refusal.socks, socksReply.notAllowed);
    assert.equal(r.refusal.code, "DS_SERVICE_NOT_IN_STREAM");
    const odd = parseRequest(domainRequest("ssh\x1b[2J", 22));
    assert.ok(odd.kind === "refused" && !odd.refusal.message.includes("\x1b"), "a control byte is not echoed");
  });

  it("replies with VER, REP, RSV and an empty IPv4 bound address", () => {
    assert.deepEqual([...reply(socksReply.notAllowed)], [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
  });

  it("HTTP CONNECT: the host names the service; other methods, addresses and oversized heads are refused", () => {
    const req = (text: string) => Buffer.from(text, "latin1");
    assert.deepEqual(parseConnect(req("CONNECT web:443 HTTP/1.1\r\nHost: web:443")), { kind: "more" });
    assert.deepEqual(parseConnect(req("CONNECT web:443 HTTP/1.1\r\nHost: web:443\r\n\r\nhello")), {
      kind: "done",
      value: { service: "web", port: 443 },
      used: 43,
    });
    const cases: Array<[string, number, string]> = [
      ["GET http://web/ HTTP/1.1\r\n\r\n", 405, "DS_SOCKS_REQUEST_INVALID"],
      ["CONNECT 10.0.0.1:22 HTTP/1.1\r\n\r\n", 400, "DS_SOCKS_ADDRESS_NOT_SERVICE"],
      ["CONNECT [::1]:22 HTTP/1.1\r\n\r\n", 400, "DS_SOCKS_ADDRESS_NOT_SERVICE"],
      ["CONNECT web HTTP/1.1\r\n\r\n", 400, "DS_SOCKS_REQUEST_INVALID"],
      ["CONNECT web:99999 HTTP/1.1\r\n\r\n", 400, "DS_SOCKS_REQUEST_INVALID"],
      ["CONNECT intranet.example:443 HTTP/1.1\r\n\r\n", 403, "DS_SERVICE_NOT_IN_STREAM"],
      ["HELLO\r\n\r\n", 400, "DS_SOCKS_REQUEST_INVALID"],
      [`CONNECT web:80 HTTP/1.1\r\nX: ${"a".repeat(9000)}`, 431, "DS_SOCKS_REQUEST_INVALID"],
      [`CONNECT web:80 HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`, 431, "DS_SOCKS_REQUEST_INVALID"],
    ];
    for (const [text, http, code] of cases) {
      const r = parseConnect(req(text));
      assert.ok(r.kind === "refused", text.slice(0, 40));
      assert.equal(r.refusal.http, http, text.slice(0, 40));
      assert.equal(r.refusal.code, code, text.slice(0, 40));
    }
  });

  it("HTTP responses: a bare 200, a refusal with its code in a header and the body", () => {
    assert.equal(response(200).toString(), "HTTP/1.1 200 Connection established\r\n\r\n");
    const text = response(403, { code: "DS_SERVICE_NOT_IN_STREAM", message: "no vnc here" }).toString();
    assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(text, /\r\nX-Devicestreams-Error: DS_SERVICE_NOT_IN_STREAM\r\n/);
    assert.match(text, /\r\nContent-Length: 38\r\n/);
    assert.match(text, /\r\n\r\nDS_SERVICE_NOT_IN_STREAM: no vnc here\n$/);
  });

  it("maps a tunnel's failure to the reply a client understands", () => {
    const map = (code: string) => {
      const r = tunnelRefusal(code, "m");
      return [r.socks, r.http];
    };
    assert.deepEqual(map("DS_SERVICE_NOT_IN_STREAM"), [0x02, 403]);
    assert.deepEqual(map("DS_PORT_OUT_OF_RANGE"), [0x02, 502]);
    assert.deepEqual(map("DS_DEVICE_REFUSED"), [0x02, 502]);
    assert.deepEqual(map("DS_TARGET_REFUSED"), [0x05, 502]);
    assert.deepEqual(map("DS_DEVICE_NOT_ATTACHED"), [0x04, 503]);
    assert.deepEqual(map("DS_DIAL_TIMEOUT"), [0x04, 504]);
    assert.deepEqual(map("DS_CONNECTION_LIMIT"), [0x01, 503]);
    assert.deepEqual(map("unregistered code from a newer relay"), [0x01, 502]);
  });
});
