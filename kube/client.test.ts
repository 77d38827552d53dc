// The client against a real HTTP server on loopback that records what reaches it: paths are built
// from encoded segments only, a path that could leave its resource is never sent, and every
// request ends by its deadline and within its size cap.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { deviceResource } from "../api/v1alpha1.ts";
import { collectionPath, core, KubeApiError, KubeClient, objectPath, pathProblem } from "./client.ts";

const devices = { ...deviceResource };
const payload = "../../../../api/v1/pods?watch=true#";

const apiError = (reason: string, pattern?: RegExp) => (err: unknown) =>
  err instanceof KubeApiError &&
  err.code === "DS_KUBE_API" &&
  err.reason === reason &&
  (!pattern || pattern.test(err.message));

describe("kube client: paths", () => {
  it("encodes every segment: a name can add no segment, query or fragment", () => {
    assert.equal(
      objectPath(devices, payload, "pump"),
      "/apis/devicestreams.io/v1alpha1/namespaces/..%2F..%2F..%2F..%2Fapi%2Fv1%2Fpods%3Fwatch%3Dtrue%23/devices/pump",
    );
    assert.equal(objectPath(core.pods, "ns", "a/b?c#d"), "/api/v1/namespaces/ns/pods/a%2Fb%3Fc%23d");
    assert.equal(objectPath(core.pods, "ns", "p", "status?x"), "/api/v1/namespaces/ns/pods/p/status%3Fx");
    assert.equal(objectPath(core.pods, "ns", "%2e%2e"), "/api/v1/namespaces/ns/pods/%252e%252e");
    assert.equal(collectionPath(core.pods), "/api/v1/pods");
    assert.equal(collectionPath(core.events, "n"), "/apis/events.k8s.io/v1/namespaces/n/events");
    for (const name of ["", ".", ".."]) {
      assert.throws(() => objectPath(core.pods, "ns", name), apiError("InvalidPath"), JSON.stringify(name));
    }
    assert.throws(() => collectionPath(core.pods, ".."), apiError("InvalidPath", /namespace/));
  });

  it("calls a path plain only when URL parsing cannot move it", () => {
    for (const ok of ["/api/v1/pods", "/apis/a.b/v1/namespaces/n/x/y%2Fz/status", "/api/v1/namespaces/n/pods/a.b"]) {
      assert.equal(pathProblem(ok), undefined, ok);
    }
    const bad = [
      "",
      "api/v1/pods",
      "/api/v1/namespaces/../pods",
      "/api/v1/namespaces/./pods",
      "/api/v1/%2e%2E/pods",
      "/api/v1/.%2e/pods",
      "/api/v1/%2E./pods",
      "/api/v1/pods?watch=true",
      "/api/v1/pods#x",
      "/api//v1",
      "/api/v1/",
      "/api\\..\\pods",
      "/api/.\t./pods",
      "/api/v1/pods\n",
      "/api/v1/a b",
      "/api/v1/%zz",
    ];
    for (const p of bad) assert.notEqual(pathProblem(p), undefined, JSON.stringify(p));
  });
});

describe("kube client: requests", () => {
  let server: Server;
  let seen: string[];
  let handler: (req: IncomingMessage, res: ServerResponse) => void;
  let url: string;
  const clients: KubeClient[] = [];

  const client = (options: ConstructorParameters<typeof KubeClient>[1] = {}) => {
    const kc = new KubeConfig();
    // client-node allows plain HTTP (this loopback server) only with skipTLSVerify.
    kc.loadFromOptions({
      clusters: [{ name: "c", server: url, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const c = new KubeClient(kc, options);
    clients.push(c);
    return c;
  };
  const json = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  before(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    seen = [];
    handler = (_req, res) => json(res, { kind: "Device" });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    server.closeAllConnections();
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("sends the traversal payload as one encoded namespace segment: nothing but the intended resource is asked for", async () => {
    await client().get(objectPath(devices, payload, "pump"));
    assert.deepEqual(seen, [
      "GET /apis/devicestreams.io/v1alpha1/namespaces/..%2F..%2F..%2F..%2Fapi%2Fv1%2Fpods%3Fwatch%3Dtrue%23/devices/pump",
    ]);
  });

  it("refuses a hand-built path with a dot segment, a query or a fragment before any I/O", async () => {
    const c = client();
    for (const p of [
      `/apis/devicestreams.io/v1alpha1/namespaces/${payload}/devices/pump`,
      "/apis/devicestreams.io/v1alpha1/namespaces/x/%2e%2e/%2e%2e/%2e%2e/%2e%2e/api/v1/pods",
      "/api/v1/pods?watch=true",
      "/api/v1/pods#",
    ]) {
      await assert.rejects(c.get(p), apiError("InvalidPath", /^refusing GET /), p);
    }
    await assert.rejects(
      c.watch(
        "/api/v1/namespaces/../pods",
        {},
        () => {},
        () => {},
      ),
      apiError("InvalidPath"),
    );
    assert.deepEqual(seen, []);
  });

  it("ends a request whose answer trickles in past the total deadline", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("[");
      // A byte every 50 ms keeps any idle timeout from firing: only a total deadline ends this.
      const t = setInterval(() => res.write(" "), 50);
      res.on("close", () => clearInterval(t));
    };
    const started = Date.now();
    await assert.rejects(
      client({ timeoutMs: 400 }).get("/api/v1/namespaces/n/pods/p"),
      apiError("Timeout", /GET \/api\/v1\/namespaces\/n\/pods\/p: no complete answer within 0\.4s/),
    );
    assert.ok(Date.now() - started < 3000, `${Date.now() - started} ms`);
  });

  it("refuses an answer larger than its cap, declared or streamed; a list page has a larger cap", async () => {
    const big = "x".repeat(4000);
    let declared = true;
    handler = (_req, res) => {
      const body = JSON.stringify({ items: [], pad: big });
      res.writeHead(200, declared ? { "content-length": Buffer.byteLength(body) } : {});
      // Streamed in pieces without a length: the cap must hold while reading.
      if (declared) res.end(body);
      else {
        for (let i = 0; i < body.length; i += 500) res.write(body.slice(i, i + 500));
        res.end();
      }
    };
    const c = client({ maxResponseBytes: 1024, maxListResponseBytes: 8192 });
    const tooLarge = apiError("ResponseTooLarge", /larger than 0\.0009765625 MiB/);
    await assert.rejects(c.get("/api/v1/namespaces/n/pods/p"), tooLarge);
    declared = false;
    await assert.rejects(c.get("/api/v1/namespaces/n/pods/p"), (err: KubeApiError) => {
      assert.equal(err.reason, "ResponseTooLarge");
      assert.equal(err.retryable, false);
      return true;
    });
    const page = await c.list<{ pad: string }>("/api/v1/pods", { limit: 500 });
    assert.equal(page.pad, big);
    assert.equal(seen.at(-1), "GET /api/v1/pods?limit=500");
  });

  it("two clients have their own sockets: one held busy does not slow the other", async () => {
    const held: ServerResponse[] = [];
    handler = (req, res) => {
      if (req.url?.includes("slow")) held.push(res);
      else json(res, {});
    };
    const busy = client({ maxSockets: 2 });
    const other = client({ maxSockets: 2 });
    const slow = [1, 2, 3].map(() => busy.get("/api/v1/slow").catch(() => undefined));
    await waitUntil(() => held.length === 2);
    await other.get("/api/v1/fast");
    // The third slow request waits for one of the client's own two sockets.
    assert.equal(held.length, 2);
    assert.equal(seen.filter((s) => s.includes("slow")).length, 2);
    for (const r of held.splice(0)) json(r, {});
    await waitUntil(() => held.length === 1);
    json(held[0]!, {});
    await Promise.all(slow);
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
