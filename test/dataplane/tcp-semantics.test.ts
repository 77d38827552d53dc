// TCP through the tunnel behaves like TCP: bytes exact and in order both ways, FIN carried as
// half-close, reset carried as reset, many connections at once on one stream.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { type DataPlane, startDataPlane } from "../helpers/dataplane.ts";
import { h2Session } from "../helpers/raw-peers.ts";
import { countMatches, dialMode, modeTarget } from "../helpers/robustness.ts";
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

  // Each reset used to end in an HTTP/2 RST_STREAM from the edge that received it. Node's relay
  // takes over 1,000 of them on one session for the "rapid reset" attack and ends the session:
  // one user's flood of short connections cut the device off for everyone (bench/flood.ts).
  it("1,500 resets each way and 2,000 cancelled calls leave the stream's other connections and sessions up", async () => {
    const target = await modeTarget();
    stopAfterTest({ stop: () => target.close() });
    const other = stopAfterTest(await startDataPlane({ service: "m", allow: [`m=${target.address}`] }));
    const held = await dialMode(other.client.port, "echo");
    const echoed = async (text: string) => {
      const back = new Promise<string>((r) => held.once("data", (c: Buffer) => r(c.toString())));
      held.write(text);
      assert.equal(await within(`the held connection to echo ${text}`, back, 10_000), text);
    };
    await echoed("before");
    const clientResets = async () => {
      const s = await dialMode(other.client.port, "echo");
      await new Promise((r) => s.once("data", r).write("x"));
      s.resetAndDestroy();
    };
    const targetResets = async () => {
      const s = await dialMode(other.client.port, "reset");
      assert.equal((await collect(s)).error?.code, "ECONNRESET");
    };
    // And the flood's shape: services that open calls and cancel each once it is paired.
    const cancelPaired = async () => {
      const { session } = await h2Session(Number(other.relay.address.split(":")[1]), other.stream.ca.certPem);
      for (let i = 0; i < 100; i++) {
        const req = session.request({
          ":method": "POST",
          ":path": "/devicestreams.v1alpha1.Relay/Connect",
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${other.stream.sourceToken}`,
        });
        req.on("error", () => {});
        await new Promise((r) => req.once("response", r).once("close", r));
        req.close();
      }
      session.destroy();
    };
    for (const one of [clientResets, targetResets]) {
      for (let i = 0; i < 1500; i += 50) await Promise.all(Array.from({ length: 50 }, one));
    }
    await Promise.all(Array.from({ length: 20 }, cancelPaired));
    await echoed("after");
    assert.equal(countMatches(other.agent.process, /attached to relay/), 1, "the agent had to attach again");
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
