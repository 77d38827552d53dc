// The gateway's server in-process against real sockets: what it replays, how it passes on a FIN
// and a reset, and what it does when the upstream is not there.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { createRegistry } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { clientHello } from "../test/helpers/client-hello.ts";
import { sha256 } from "../test/helpers/tcp-targets.ts";
import { gatewayMetrics } from "./metrics.ts";
import { RouteTable } from "./routes.ts";
import { type GatewayServer, startGatewayServer } from "./server.ts";

const limits = {
  handshakeTimeoutMs: 5_000,
  connectTimeoutMs: 2_000,
  maxConnections: 100,
  maxConnectionsPerSource: 100,
  maxClientHelloBytes: 16_389,
};

async function upstreamServer(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Everything `s` receives until it closes, and how it closed. */
function drain(s: Socket): Promise<{ data: Buffer; ended: boolean; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    let error: string | undefined;
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("end", () => {
      ended = true;
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code;
    });
    s.on("close", () => resolve({ data: Buffer.concat(chunks), ended, error }));
  });
}

describe("gateway server", () => {
  const registry = createRegistry("gateway-test");
  const metrics = gatewayMetrics(registry);
  let gateway: GatewayServer;
  let routes: RouteTable;
  let up: { server: Server; port: number };
  let onUpstream: (s: Socket) => void = () => {};

  before(async () => {
    up = await upstreamServer((s) => onUpstream(s));
    routes = new RouteTable(new Map([["up.test", { host: "127.0.0.1", port: up.port }]]));
    gateway = await startGatewayServer({
      listen: "127.0.0.1:0",
      routes: () => routes,
      limits,
      metrics,
      log: createLogger("gateway-test"),
    });
  });
  after(async () => {
    gateway.forceClose();
    await gateway.stopAccepting();
    up.server.close();
  });

  it("replays the ClientHello and what follows byte for byte, and passes each FIN on (half-close)", async () => {
    const hello = clientHello("up.test");
    const payload = randomBytes(2 * 1024 * 1024);
    const reply = randomBytes(1024 * 1024);
    const atUpstream = new Promise<{ data: Buffer; ended: boolean }>((resolve) => {
      onUpstream = (s) => {
        const got = drain(s);
        // The client's FIN reaches the upstream while the upstream can still send: then it answers.
        s.once("end", () => s.end(reply));
        void got.then(resolve);
      };
    });
    const c = await dial(gateway.port);
    const atClient = drain(c);
    // The ClientHello in three segments, then the payload; then a FIN.
    c.write(hello.subarray(0, 3));
    c.write(hello.subarray(3, 40));
    c.write(hello.subarray(40));
    c.end(payload);
    const u = await atUpstream;
    assert.equal(sha256(u.data), sha256(Buffer.concat([hello, payload])));
    assert.ok(u.ended);
    const got = await atClient;
    assert.equal(got.error, undefined);
    assert.ok(got.ended, "the upstream's FIN reached the client");
    assert.equal(sha256(got.data), sha256(reply));
  });

  it("passes on a FIN that follows the ClientHello at once (the client said all it will)", async () => {
    const reply = randomBytes(64 * 1024);
    const atUpstream = new Promise<{ data: Buffer; ended: boolean }>((resolve) => {
      onUpstream = (s) => {
        void drain(s).then(resolve);
        s.once("end", () => s.end(reply));
      };
    });
    const c = await dial(gateway.port);
    const atClient = drain(c);
    const hello = clientHello("up.test");
    c.end(hello);
    const u = await atUpstream;
    assert.ok(u.ended);
    assert.equal(sha256(u.data), sha256(hello));
    const got = await atClient;
    assert.equal(got.error, undefined);
    assert.equal(sha256(got.data), sha256(reply));
  });

  it("resets the client when the upstream resets, and the upstream when the client resets", async () => {
    onUpstream = (s) => s.once("data", () => s.resetAndDestroy());
    const c = await dial(gateway.port);
    const out = drain(c);
    c.write(clientHello("up.test"));
    assert.equal((await out).error, "ECONNRESET");

    const upstreamSide = new Promise<{ error?: string }>((resolve) => {
      onUpstream = (s) => {
        void drain(s).then(resolve);
        s.once("data", () => c2.resetAndDestroy());
      };
    });
    const c2 = await dial(gateway.port);
    c2.on("error", () => {});
    c2.write(clientHello("up.test"));
    assert.equal((await upstreamSide).error, "ECONNRESET");
  });

  it("closes the client when the upstream refuses, naming the upstream", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
    routes = new RouteTable(new Map([["gone.test", { host: "127.0.0.1", port: closedPort }]]));
    const before =
      (await metrics.connections.get()).values.find((v) => v.labels.reason === "upstream_refused")?.value ?? 0;
    const c = await dial(gateway.port);
    const out = drain(c);
    c.write(clientHello("gone.test"));
    const r = await out;
    assert.equal(r.data.length, 0);
    const after = (await metrics.connections.get()).values.find((v) => v.labels.reason === "upstream_refused")?.value;
    assert.equal(after, before + 1);
  });
});
