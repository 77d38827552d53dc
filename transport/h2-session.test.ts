// The relay client's HTTP/2 session: one per relay, made again after it dies, kept honest by
// keepalive pings; TLS as runtime/tls.ts gives it (a renewed device certificate on each new
// connection, the TLS name, an expired server certificate), an HTTP proxy's CONNECT, and what
// a server that is not a gRPC relay answers. Real TLS on loopback throughout.
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import http2 from "node:http2";
import { connect as tcpConnect } from "node:net";
import tls from "node:tls";
import { type StatusObject, status } from "@grpc/grpc-js";
import { encodeData } from "../proto/frames.ts";
import { createCertificateAuthority, issueCertificate } from "../runtime/pki.ts";
import { RenewableIdentity } from "../runtime/tls.ts";
import { type FrameServerCall, startForwarder, startStubRelay } from "../test/helpers/grpc-relay-stub.ts";
import { callError, relayFromFlags } from "./call-error.ts";
import type { ProxySettings } from "./proxy.ts";
import { RelayClient, type RelayClientOptions } from "./relay-client.ts";
import { dialRelay } from "./relay-dial.ts";

const keepalive = { timeMs: 10_000, timeoutMs: 5_000 };

/** A Connect call's status; `open` resolves once the server has the call. */
function statusOf(call: ReturnType<RelayClient["connect"]>): Promise<StatusObject> {
  call.on("error", () => {});
  return new Promise((resolve) => call.on("status", resolve));
}

describe("relay client session", function () {
  this.timeout(30_000);

  describe("against a grpc-js relay through a TCP forwarder", () => {
    const opened: FrameServerCall[] = [];
    let stub: Awaited<ReturnType<typeof startStubRelay>>;
    let forwarder: Awaited<ReturnType<typeof startForwarder>>;
    let client: RelayClient | undefined;
    const connect = (o: Partial<RelayClientOptions> = {}) => {
      client = new RelayClient({ address: forwarder.address, tls: { caPem: stub.ca.certPem }, keepalive, ...o });
      return client;
    };
    /** A call the server holds open (it answers when its peer ends). */
    const held = async (c: RelayClient) => {
      const before = opened.length;
      const call = c.connect("src_held");
      call.on("error", () => {});
      call.write(encodeData(Buffer.from("hi")));
      while (opened.length === before) await new Promise((r) => setTimeout(r, 5));
      return call;
    };

    before(async () => {
      stub = await startStubRelay({
        connect: (call) => {
          opened.push(call);
          call.on("data", () => {});
          call.on("end", () => call.end());
        },
      });
    });
    beforeEach(async () => {
      forwarder = await startForwarder(stub.port);
    });
    afterEach(() => {
      client?.close();
      forwarder.close();
    });
    after(() => stub.close());

    it("carries concurrent calls on one connection", async () => {
      const c = connect();
      const calls = [await held(c), await held(c), await held(c)];
      assert.equal(forwarder.connections, 1);
      for (const call of calls) call.end();
      for (const call of calls) assert.equal((await statusOf(call)).code, status.OK);
    });

    it("a lost connection fails its calls UNAVAILABLE (the relay lost); the next call makes a new one", async () => {
      const c = connect();
      const call = await held(c);
      const ended = statusOf(call);
      forwarder.cut();
      const s = await ended;
      assert.deepEqual([s.code, s.details], [status.UNAVAILABLE, "Connection dropped"]);
      assert.equal(callError(s, relayFromFlags).code, "DS_RELAY_LOST");
      const next = await held(c);
      assert.equal(forwarder.connections, 2);
      next.end();
      assert.equal((await statusOf(next)).code, status.OK);
    });

    it("keepalive: a relay that stops answering pings is dropped within time + timeout", async () => {
      const c = connect({ keepalive: { timeMs: 300, timeoutMs: 300 } });
      const call = await held(c);
      const ended = statusOf(call);
      const t0 = Date.now();
      forwarder.freeze();
      const s = await ended;
      const after = Date.now() - t0;
      assert.deepEqual([s.code, s.details], [status.UNAVAILABLE, "Connection dropped"]);
      assert.ok(after >= 250 && after < 2_000, `dropped ${after} ms after the relay went silent`);
      forwarder.cut(); // the dead TCP connection; the next call dials anew
      const next = await held(c);
      next.end();
      assert.equal((await statusOf(next)).code, status.OK);
    });

    it("keepalive: an idle session that answers its pings stays up", async () => {
      const c = connect({ keepalive: { timeMs: 100, timeoutMs: 200 } });
      const call = await held(c);
      await new Promise((r) => setTimeout(r, 1_000));
      call.end();
      assert.equal((await statusOf(call)).code, status.OK);
      assert.equal(forwarder.connections, 1);
    });
  });

  it("each new TLS connection presents the renewed device certificate; open ones keep theirs", async () => {
    const deviceCa = await createCertificateAuthority("device CA");
    const names: string[] = [];
    const stub = await startStubRelay(
      {
        connect: (call) => {
          const cert = call.getAuthContext()?.sslPeerCertificate;
          names.push(String(cert?.subject?.CN));
          call.on("data", () => {});
          call.on("end", () => call.end());
        },
      },
      { clientCaPem: deviceCa.certPem },
    );
    const forwarder = await startForwarder(stub.port);
    const first = await issueCertificate(deviceCa, { commonName: "device-v1", usage: "client" });
    const identity = new RenewableIdentity(first.certPem, first.keyPem);
    const client = new RelayClient({
      address: forwarder.address,
      tls: { caPem: stub.ca.certPem, identity },
      keepalive,
    });
    try {
      const call = async () => {
        const c = client.connect("src_id");
        const s = statusOf(c);
        c.end();
        return s;
      };
      assert.equal((await call()).code, status.OK);
      const second = await issueCertificate(deviceCa, { commonName: "device-v2", usage: "client" });
      identity.update(second.certPem, second.keyPem);
      // Still the first connection: it keeps the certificate it was made with, until it is lost.
      const open = client.connect("src_id");
      const lost = statusOf(open);
      open.write(encodeData(Buffer.from("hi")));
      while (names.length < 2) await new Promise((r) => setTimeout(r, 5));
      forwarder.cut();
      assert.equal((await lost).code, status.UNAVAILABLE);
      assert.equal((await call()).code, status.OK);
      assert.deepEqual(names, ["device-v1", "device-v1", "device-v2"]);
      assert.equal(forwarder.connections, 2);
    } finally {
      client.close();
      forwarder.close();
      stub.close();
    }
  });

  it("an expired relay certificate is named as untrusted", async () => {
    const stub = await startStubRelay({}, { validityMs: -60_000 });
    const client = new RelayClient({ address: stub.address, tls: { caPem: stub.ca.certPem }, keepalive });
    try {
      const s = await statusOf(client.connect("src_x"));
      assert.equal(s.code, status.UNAVAILABLE);
      const e = callError(s, relayFromFlags);
      assert.equal(e.code, "DS_TLS_UNTRUSTED");
      assert.match(e.message, /certificate has expired/);
    } finally {
      client.close();
      stub.close();
    }
  });

  describe("TLS name", () => {
    it("sends the --server-name as SNI and checks the certificate against it; an IP gets no SNI", async () => {
      const ca = await createCertificateAuthority("sni CA");
      const cert = await issueCertificate(ca, {
        commonName: "relay",
        dnsNames: ["relay.example"],
        ipAddresses: ["127.0.0.1"],
        usage: "server",
      });
      const sni: (string | false | null)[] = [];
      const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, ALPNProtocols: ["h2"] }, (s) => {
        sni.push(s.servername);
        s.on("error", () => {});
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
      try {
        const named = await dialRelay({ address, tls: { caPem: ca.certPem }, serverName: "relay.example" });
        while (sni.length < 1) await new Promise((r) => setTimeout(r, 5));
        const ip = await dialRelay({ address, tls: { caPem: ca.certPem } });
        while (sni.length < 2) await new Promise((r) => setTimeout(r, 5));
        named.destroy();
        ip.destroy();
        assert.deepEqual(sni, ["relay.example", false]);
        await assert.rejects(
          dialRelay({ address, tls: { caPem: ca.certPem }, serverName: "other.example" }),
          /does not match certificate's altnames/,
        );
      } finally {
        server.close();
      }
    });
  });

  describe("through an HTTP proxy", () => {
    let proxy: HttpServer;
    const targets: string[] = [];
    let stub: Awaited<ReturnType<typeof startStubRelay>>;
    const settings = (credentials?: string): ProxySettings => {
      const port = (proxy.address() as { port: number }).port;
      return { url: `http://127.0.0.1:${port}`, host: "127.0.0.1", port, credentials, noProxy: [], source: "--proxy" };
    };

    before(async () => {
      stub = await startStubRelay({
        connect: (call) => {
          call.on("data", () => {});
          call.on("end", () => call.end());
        },
      });
      proxy = createHttpServer();
      proxy.on("connect", (req, socket, head) => {
        if (req.headers["proxy-authorization"] !== `Basic ${Buffer.from("u:right").toString("base64")}`) {
          socket.end("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
          return;
        }
        targets.push(req.url ?? "");
        const [host, port] = (req.url ?? "").split(":");
        const upstream = tcpConnect({ host, port: Number(port) }, () => {
          socket.write("HTTP/1.1 200 Connection established\r\n\r\n");
          upstream.write(head);
          upstream.pipe(socket).pipe(upstream);
        });
        upstream.on("error", () => socket.destroy());
        socket.on("error", () => upstream.destroy());
      });
      await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    });
    after(() => {
      proxy.close();
      stub.close();
    });

    it("makes its CONNECT with Basic auth and runs TLS to the relay through it", async () => {
      const client = new RelayClient({
        address: stub.address,
        tls: { caPem: stub.ca.certPem },
        keepalive,
        proxy: settings("u:right"),
      });
      try {
        const call = client.connect("src_proxy");
        const s = statusOf(call);
        call.end();
        assert.equal((await s).code, status.OK);
        assert.deepEqual(targets, [stub.address]);
      } finally {
        client.close();
      }
    });

    it("a proxy that refuses the credentials fails the call with DS_PROXY_AUTH", async () => {
      const client = new RelayClient({
        address: stub.address,
        tls: { caPem: stub.ca.certPem },
        keepalive,
        proxy: settings("u:wrong"),
      });
      try {
        const e = callError(await statusOf(client.connect("src_proxy")), relayFromFlags);
        assert.equal(e.code, "DS_PROXY_AUTH");
        assert.match(e.message, /refused the credentials given \(407/);
      } finally {
        client.close();
      }
    });
  });

  describe("a server that is not a gRPC relay, or resets the stream", () => {
    let server: http2.Http2SecureServer;
    let client: RelayClient;
    const headers: http2.IncomingHttpHeaders[] = [];

    before(async () => {
      const ca = await createCertificateAuthority("raw h2 CA");
      const cert = await issueCertificate(ca, { commonName: "raw", ipAddresses: ["127.0.0.1"], usage: "server" });
      server = http2.createSecureServer({ cert: cert.certPem, key: cert.keyPem });
      // The bearer token names what the server does with the call.
      server.on("stream", (stream, h) => {
        headers.push(h);
        stream.on("error", () => {});
        const grpc = { ":status": 200, "content-type": "application/grpc" };
        switch (String(h.authorization).slice("Bearer ".length)) {
          case "html404":
            stream.respond({ ":status": 404, "content-type": "text/html" });
            return void stream.end("<h1>not here</h1>");
          case "html200":
            stream.respond({ ":status": 200, "content-type": "text/html" });
            return void stream.end("<h1>hello</h1>");
          case "refused":
            return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
          case "cancel":
            return stream.close(http2.constants.NGHTTP2_CANCEL);
          case "calm":
            return stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
          case "no-status":
            stream.respond(grpc);
            return void stream.end();
          case "drop":
            stream.respond(grpc);
            return void setTimeout(() => stream.session?.socket.destroy(), 20);
        }
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
      client = new RelayClient({ address, tls: { caPem: ca.certPem }, keepalive });
    });
    after(() => {
      client.close();
      server.close();
    });

    it("speaks the gRPC request headers", async () => {
      await statusOf(client.connect("html404", undefined, { deadlineMs: 5_000 }));
      const h = headers.at(-1)!;
      assert.equal(h[":method"], "POST");
      assert.equal(h[":path"], "/devicestreams.v1alpha1.Relay/Connect");
      assert.equal(h["content-type"], "application/grpc");
      assert.equal(h.te, "trailers");
      assert.match(String(h["grpc-timeout"]), /^\d{1,8}m$/);
      assert.ok(Number(String(h["grpc-timeout"]).slice(0, -1)) <= 5_000);
    });

    const cases: [string, status, RegExp][] = [
      [
        "html404",
        status.UNIMPLEMENTED,
        /^Received HTTP status code 404 \(content-type "text\/html"\): not a gRPC server$/,
      ],
      ["html200", status.UNKNOWN, /^Received HTTP status code 200 with content-type "text\/html": not a gRPC server$/],
      ["refused", status.UNAVAILABLE, /^Stream refused by server$/],
      ["cancel", status.CANCELLED, /^Call cancelled$/],
      ["calm", status.RESOURCE_EXHAUSTED, /^Bandwidth exhausted or memory limit exceeded$/],
      ["no-status", status.INTERNAL, /^Received RST_STREAM with code 0 \(Call ended without gRPC status\)$/],
      ["drop", status.UNAVAILABLE, /^Connection dropped$/],
    ];
    for (const [behaviour, code, details] of cases) {
      it(`${behaviour}: ${status[code]}, in grpc-js's words`, async () => {
        const s = await statusOf(client.connect(behaviour));
        assert.equal(s.code, code, s.details);
        assert.match(s.details, details);
      });
    }
  });
});
