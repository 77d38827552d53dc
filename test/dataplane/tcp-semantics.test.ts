// TCP through the tunnel behaves like TCP: bytes exact and in order both ways, FIN carried as
// half-close, reset carried as reset, many connections at once on one stream.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { type DataPlane, startDataPlane } from "../helpers/dataplane.ts";
import { collect, dial, roundTrip } from "../helpers/tcp-client.ts";
import { echoServer, hashServer, listen, sha256, type TcpTarget } from "../helpers/tcp-targets.ts";
import { within } from "../helpers/wait.ts";

describe("data plane: TCP semantics through relay and agent", function () {
  this.timeout(120_000);
  let echo: TcpTarget;
  let hasher: TcpTarget;
  let resetter: TcpTarget;
  let plane: DataPlane;

  before(async () => {
    echo = await echoServer();
    hasher = await hashServer();
    // Reads a little, then resets the connection (RST, not FIN).
    resetter = await listen((s) => s.once("data", () => s.resetAndDestroy()));
    plane = await startDataPlane({
      service: "echo",
      allow: [`echo=${echo.address}`],
    });
  });
  after(async () => {
    await plane?.stop();
    await Promise.all([echo, hasher, resetter].map((t) => t?.close()));
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") console.error(plane.logs().slice(-20_000));
  });

  it("carries 16 MiB byte-exact in both directions", async () => {
    const payload = randomBytes(16 * 1024 * 1024);
    const out = await roundTrip(plane.client.port, payload);
    assert.equal(out.error, undefined);
    assert.equal(out.data.length, payload.length);
    assert.equal(sha256(out.data), sha256(payload));
    assert.ok(out.ended, "the echo's FIN came back as FIN");
  });

  it("carries a half-close: the client stops writing and still reads the whole reply", async () => {
    // The echo server only closes after our FIN reached it, and everything sent before the FIN
    // must come back after it.
    const s = await dial(plane.client.port);
    const done = collect(s);
    const first = randomBytes(300_000);
    s.write(first);
    s.end();
    const out = await done;
    assert.ok(out.ended);
    assert.equal(sha256(out.data), sha256(first));
  });

  it("carries a reset from the target to the client as a reset", async () => {
    const other = stopAfterTest(await startDataPlane({ service: "rst", allow: [`rst=${resetter.address}`] }));
    const s = await dial(other.client.port);
    const done = collect(s);
    s.write("hello");
    const out = await done;
    assert.equal(out.ended, false, "a reset must not look like a clean close");
    assert.equal(out.error?.code, "ECONNRESET");
  });

  it("carries a reset from the client to the target as a reset", async () => {
    // How the target's side of the connection ended: its error, or undefined for a clean FIN.
    const targetSaw = Promise.withResolvers<NodeJS.ErrnoException | undefined>();
    const target = await listen((s) => {
      s.on("error", (e: NodeJS.ErrnoException) => targetSaw.resolve(e));
      s.on("end", () => targetSaw.resolve(undefined));
      s.write("ready");
    });
    stopAfterTest({ stop: () => target.close() });
    const other = stopAfterTest(await startDataPlane({ service: "t", allow: [`t=${target.address}`] }));
    const s = await dial(other.client.port);
    await new Promise((r) => s.once("data", r));
    s.resetAndDestroy();
    const err = await within("the target to see the connection end", targetSaw.promise, 10_000);
    assert.equal(err?.code, "ECONNRESET");
  });

  it("carries 200 concurrent connections on one stream, each with its own payload", async () => {
    const payloads = Array.from({ length: 200 }, (_, i) => randomBytes(1000 + i * 997));
    const results = await Promise.all(payloads.map((p) => roundTrip(plane.client.port, p)));
    results.forEach((r, i) => {
      assert.equal(r.error, undefined, `connection ${i}: ${r.error?.message}`);
      assert.equal(sha256(r.data), sha256(payloads[i]!), `connection ${i} got someone else's bytes`);
    });
  });

  it("keeps the hash of a 64 MiB upload computed on the far side (one direction only)", async () => {
    const other = stopAfterTest(await startDataPlane({ service: "hash", allow: [`hash=${hasher.address}`] }));
    const payload = randomBytes(64 * 1024 * 1024);
    const out = await roundTrip(other.client.port, payload);
    assert.equal(out.data.toString(), sha256(payload));
  });
});
