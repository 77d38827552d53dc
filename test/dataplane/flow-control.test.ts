// Flow control through the tunnel: a stalled connection never slows another (no head-of-line
// blocking), a stalled reader makes the writer wait with memory bounded in every process, and
// the relay's limits (connections, idle timeout, lifetime) hold with the right error codes.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeStaticStream } from "../../cli/static-stream.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { type DataPlane, startAgent, startClient, startDataPlane, startRelay } from "../helpers/dataplane.ts";
import {
  connectionFailed,
  countIncoming,
  countMatches,
  dialMode,
  expectReset,
  generated,
  generatedSha256,
  HeldConnection,
  isHealthy,
  type ModeTarget,
  metric,
  modeTarget,
  reasonPattern,
  waitForMetric,
  waitForReason,
} from "../helpers/robustness.ts";
import { collect, dial } from "../helpers/tcp-client.ts";
import { sha256 } from "../helpers/tcp-targets.ts";
import { sleep, waitFor, within } from "../helpers/wait.ts";

const MiB = 1024 * 1024;

/** Waits until `count()` has not grown for `quietMs`: the writer or reader is stuck. */
async function waitStuck(
  what: string,
  count: () => number | Promise<number>,
  quietMs = 1_000,
  timeoutMs = 30_000,
): Promise<number> {
  let last = await count();
  let since = Date.now();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error(`${what} never stopped (at ${last} bytes)`);
    // Sampling a quiet period: this measures that nothing moves for quietMs, so it pauses.
    await sleep(100);
    const now = await count();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

/** Writes generated(total) respecting 'drain', then half-closes; `sha256` is of what was written. */
function offer(socket: Socket, total: number): { written: () => number; finished: Promise<void> } {
  let written = 0;
  const gen = generated(total);
  const finished = new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    const more = () => {
      for (let c = gen.next(); ; c = gen.next()) {
        if (c.done) {
          socket.end();
          resolve();
          return;
        }
        written += c.value.length;
        if (!socket.write(c.value)) return;
      }
    };
    socket.on("drain", more);
    more();
  });
  return { written: () => written, finished };
}

/** Resident memory of each process, in MiB, as `relay=.. agent=.. connect=..`. */
function rss(processes: ComponentProcess[]): Record<string, number> {
  return Object.fromEntries(processes.map((p) => [p.name, Math.round((p.rssKiB() / 1024) * 10) / 10]));
}

describe("data plane: flow control and limits", function () {
  this.timeout(120_000);
  let target: ModeTarget;
  let plane: DataPlane | undefined;
  /** Processes a case started itself (not through startDataPlane), and their folder. */
  let own: { processes: ComponentProcess[]; dir: string } | undefined;

  before(async () => {
    target = await modeTarget();
  });
  after(async () => {
    await target?.close();
  });
  afterEach(async function () {
    const failed = this.currentTest?.state === "failed";
    if (failed && plane) console.error(plane.logs().slice(-30_000));
    if (failed && own) for (const p of own.processes) console.error(`----- ${p.name} -----\n${p.logs.slice(-10_000)}`);
    await plane?.stop();
    plane = undefined;
    if (own) {
      await Promise.all(own.processes.map((p) => p.stop()));
      rmSync(own.dir, { recursive: true, force: true });
      own = undefined;
    }
  });

  const start = async (relayArgs: string[] = []) => {
    plane = await startDataPlane({ service: "t", allow: [`t=${target.address}`], relayArgs });
    return plane;
  };

  it("a stalled connection does not slow the others (no head-of-line blocking)", async () => {
    const p = await start();
    const fromDevice = async () =>
      (await metric(p.relay.metricsPort, "devicestreams_relay_bytes_total", 'direction="from_device"')) ?? 0;
    // A1: the target stops reading what the client sends. A2: the client stops reading what the
    // target sends. Each fills every window and buffer on its path, one in each direction.
    const a1 = await dialMode(p.client.port, "stall");
    const a1Total = 128 * MiB;
    const a1Offer = offer(a1, a1Total);
    const a1Reply = collect(a1, 60_000);
    const a2 = await dialMode(p.client.port, "flood");
    const a2Read = countIncoming(a2);
    await waitFor("A2's flood to arrive", () => a2Read() > MiB);
    a2.pause();
    const a1Stuck = await waitStuck("A1's writer", a1Offer.written);
    const a2Stuck = await waitStuck("the relay's bytes from the device", fromDevice);
    const a2Got = a2Read();
    console.log(
      `      stalled: A1's writer stuck after ${(a1Stuck / MiB).toFixed(1)} MiB, A2's flood after ${(a2Stuck / MiB).toFixed(1)} MiB through the relay`,
    );

    // C: a 64-byte ping-pong, while B runs and A1 and A2 stay stalled.
    const c = await dialMode(p.client.port, "echo");
    const pingPong = async (rounds: number) => {
      const times: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const ping = randomBytes(64);
        const t0 = process.hrtime.bigint();
        const pong = new Promise<Buffer>((resolve) => {
          let got = Buffer.alloc(0);
          const onData = (d: Buffer) => {
            got = Buffer.concat([got, d]);
            if (got.length < ping.length) return;
            c.off("data", onData);
            resolve(got);
          };
          c.on("data", onData);
        });
        c.write(ping);
        assert.ok((await within(`pong ${i}`, pong, 5_000)).equals(ping), `pong ${i} is the ping`);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      return times.sort((x, y) => x - y);
    };
    // B: 32 MiB up and back through an echo.
    const started = Date.now();
    const payload = randomBytes(32 * MiB);
    const b = await dial(p.client.port);
    const bDone = collect(b, 30_000);
    b.write("echo\n");
    b.end(payload);
    const [times, bOut] = await Promise.all([pingPong(50), bDone]);
    const took = Date.now() - started;
    assert.equal(bOut.error, undefined);
    assert.equal(sha256(bOut.data), sha256(payload), "B's bytes came back exact");
    console.log(
      `      B moved 32 MiB each way in ${took} ms; C's 64-byte round trips: p50 ${times[25]!.toFixed(1)} ms, max ${times.at(-1)!.toFixed(1)} ms`,
    );
    assert.ok(took < 20_000, `B took ${took} ms beside the stalled connections`);
    c.destroy();

    // The stalled ones only waited: they moved nothing meanwhile, and they still work.
    assert.equal(a1Offer.written(), a1Stuck, "A1's writer stayed stuck");
    assert.equal(a2Read(), a2Got, "A2 read nothing while paused");
    a2.resume();
    await waitFor("A2 to flow again", () => a2Read() > a2Got + 4 * MiB);
    a2.destroy();
    target.resumeStalled();
    await within("A1's writer to finish", a1Offer.finished, 30_000);
    const a1Out = await a1Reply;
    assert.equal(a1Out.data.toString(), generatedSha256(a1Total), "A1's bytes arrived exact once the target read");
  });

  it("backpressure: 1 GiB offered to a stalled reader is held back with bounded memory, then arrives exact", async () => {
    const p = await start();
    const processes = p.processes();
    // Warm-up: let every process reach its working size (buffers, heap, JIT) on a full-speed transfer.
    const warm = await dialMode(p.client.port, "hash");
    const warmDone = collect(warm, 30_000);
    const warmStart = Date.now();
    await offer(warm, 128 * MiB).finished;
    assert.equal((await warmDone).data.toString(), generatedSha256(128 * MiB));
    console.log(`      warm-up: 128 MiB in ${Date.now() - warmStart} ms`);
    await waitForMetric(p.relay.metricsPort, "devicestreams_relay_connections_active", 0);
    const baseline = rss(processes);

    const total = 1024 * MiB;
    const s = await dialMode(p.client.port, "stall");
    const reply = collect(s, 120_000);
    const writer = offer(s, total);
    const inTunnel = await waitStuck("the writer", writer.written);
    // Sample while it stays stuck: the peak, not a lucky moment after a collection. This measures
    // that memory stays put over a second in which nothing moves, so it pauses between samples.
    const samples: Array<Record<string, number>> = [];
    for (let i = 0; i < 10; i++) {
      samples.push(rss(processes));
      await sleep(100);
    }
    assert.equal(writer.written(), inTunnel, "the writer stayed stuck");
    const peak = Object.fromEntries(processes.map((x) => [x.name, Math.max(...samples.map((r) => r[x.name]!))]));
    const growth = Object.fromEntries(
      processes.map((x) => [x.name, Math.round((peak[x.name]! - baseline[x.name]!) * 10) / 10]),
    );
    console.log(
      `      writer stuck after ${(inTunnel / MiB).toFixed(1)} MiB of 1024; RSS MiB baseline ${JSON.stringify(baseline)}, stalled peak ${JSON.stringify(peak)}, growth ${JSON.stringify(growth)}`,
    );
    assert.ok(inTunnel < 64 * MiB, `the tunnel took ${inTunnel} bytes from a writer whose reader is stalled`);
    for (const [name, mib] of Object.entries(growth)) assert.ok(mib <= 16, `${name} grew ${mib} MiB while stalled`);

    const resumedAt = Date.now();
    target.resumeStalled();
    await within("the writer to finish", writer.finished, 90_000);
    const out = await reply;
    const took = (Date.now() - resumedAt) / 1000;
    assert.equal(out.data.toString(), generatedSha256(total), "all 1 GiB arrived exact");
    console.log(
      `      after resuming, 1 GiB arrived exact in ${took.toFixed(1)} s (${(1024 / took).toFixed(0)} MiB/s)`,
    );
  });

  it("backpressure the other way: a client that stops reading holds the target back with bounded memory", async () => {
    const p = await start();
    const processes = p.processes();
    const warmTotal = 128 * MiB;
    const warm = await dialMode(p.client.port, `gen ${warmTotal}`);
    warm.end(); // nothing more to send; the target's FIN then closes the connection
    const warmOut = await collect(warm, 30_000);
    assert.equal(sha256(warmOut.data), generatedSha256(warmTotal));
    await waitForMetric(p.relay.metricsPort, "devicestreams_relay_connections_active", 0);
    const baseline = rss(processes);

    const total = 256 * MiB;
    const s = await dialMode(p.client.port, `gen ${total}`);
    s.end();
    const hash = createHash("sha256");
    let got = 0;
    s.on("data", (c: Buffer) => {
      hash.update(c);
      got += c.length;
    });
    const ended = new Promise<void>((resolve, reject) => {
      s.once("end", resolve);
      s.once("error", reject);
    });
    await waitFor("the download to start", () => got > 0);
    s.pause();
    const fromDevice = async () =>
      (await metric(p.relay.metricsPort, "devicestreams_relay_bytes_total", 'direction="from_device"')) ?? 0;
    const through = await waitStuck("the relay's bytes from the device", fromDevice);
    // As above: the peak over a second in which nothing moves, so it pauses between samples.
    const samples: Array<Record<string, number>> = [];
    for (let i = 0; i < 10; i++) {
      samples.push(rss(processes));
      await sleep(100);
    }
    const peak = Object.fromEntries(processes.map((x) => [x.name, Math.max(...samples.map((r) => r[x.name]!))]));
    const growth = Object.fromEntries(
      processes.map((x) => [x.name, Math.round((peak[x.name]! - baseline[x.name]!) * 10) / 10]),
    );
    const held = through - warmTotal - got;
    console.log(
      `      the relay forwarded ${((through - warmTotal) / MiB).toFixed(1)} MiB before the target was held back (${(held / MiB).toFixed(1)} MiB of it unread by the client); RSS MiB baseline ${JSON.stringify(baseline)}, growth ${JSON.stringify(growth)}`,
    );
    assert.ok(through - warmTotal < 64 * MiB, "the target was held back");
    for (const [name, mib] of Object.entries(growth)) assert.ok(mib <= 16, `${name} grew ${mib} MiB while stalled`);
    s.resume();
    await within("the download to finish", ended, 60_000);
    assert.equal(got, total);
    assert.equal(hash.digest("hex"), generatedSha256(total), "every byte arrived exact after the reader resumed");
  });

  describe("relay limits", () => {
    it("--max-connections 2: the third connection gets DS_CONNECTION_LIMIT, the first two keep working", async () => {
      const p = await start(["--max-connections", "2"]);
      const one = await HeldConnection.open(p.client.port, "echo\n");
      const two = await HeldConnection.open(p.client.port, "echo\n");
      await expectReset(p.client.port);
      const reason = await waitForReason(p.client.process, connectionFailed, "DS_CONNECTION_LIMIT");
      assert.match(reason, /already carries 2 connections, its limit/);
      await one.exchange();
      await two.exchange();
      await one.finish();
      // A freed place is taken again.
      await waitFor("the relay to free the place", async () =>
        (await metric(p.relay.metricsPort, "devicestreams_relay_connections_active")) === 1 ? true : undefined,
      );
      const three = await HeldConnection.open(p.client.port, "echo\n");
      await three.finish();
      await two.finish();
    });

    it("--max-connections 2 before the device attaches: waiting calls hold the places, more are refused at once", async () => {
      // No agent yet: each call waits for one to attach (--attach-wait). Those waits must count
      // toward the limit, or every one of them becomes a dial and a live connection at the attach.
      const dir = mkdtempSync(join(tmpdir(), "ds-waiting-"));
      own = { processes: [], dir };
      const stream = await writeStaticStream(dir, { service: "t" });
      const relay = await startRelay(stream, ["--max-connections", "2", "--attach-wait", "60s"]);
      own.processes.push(relay.process);
      const client = await startClient(stream, relay.address);
      own.processes.push(client.process);
      const payload = randomBytes(64 * 1024);
      const waiting = [];
      for (let i = 1; i <= 2; i++) {
        const s = await dial(client.port);
        const outcome = collect(s, 60_000);
        s.end(Buffer.concat([Buffer.from("echo\n"), payload]));
        waiting.push(outcome);
        await waitFor(
          `the relay to hold call ${i} for the device`,
          () => countMatches(relay.process, /connection waits for the device to attach/) >= i,
        );
      }
      const refusedAt = Date.now();
      for (let i = 0; i < 5; i++) await expectReset(client.port, 5_000);
      console.log(`      5 calls over the limit refused in ${Date.now() - refusedAt} ms while 2 waited`);
      const reason = await waitForReason(client.process, connectionFailed, "DS_CONNECTION_LIMIT");
      assert.match(reason, /already carries 2 connections, its limit/);
      assert.equal(await metric(relay.metricsPort, "devicestreams_relay_connections_total", 'result="limit"'), 5);

      const first = target.connections.length;
      const agent = await startAgent(stream, relay.address, [`t=${target.address}`]);
      own.processes.push(agent.process);
      for (const outcome of await Promise.all(waiting)) {
        assert.equal(outcome.error, undefined, `a waiting call failed: ${outcome.error?.message}`);
        assert.ok(outcome.ended && outcome.data.equals(payload), "a waiting call's echo came back exact");
      }
      assert.equal(target.connections.length - first, 2, "the device dialled once per waiting call, no more");
      assert.equal(await metric(relay.metricsPort, "devicestreams_relay_connections_total", 'result="paired"'), 2);
    });

    it("--idle-timeout 1s: an idle connection is reset with DS_IDLE_TIMEOUT, an active one is not", async () => {
      const p = await start(["--idle-timeout", "1s"]);
      const active = await HeldConnection.open(p.client.port, "echo\n");
      const idle = await HeldConnection.open(p.client.port, "echo\n");
      const idleSince = Date.now();
      const idleEnd = new Promise<string>((resolve) => {
        idle.socket.once("end", () => resolve("FIN"));
        idle.socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      // The active one exchanges a little every 200 ms for 3 s, well past the timeout: the pauses
      // are the point (it must stay open while never idle for a whole second).
      for (let i = 0; i < 15; i++) {
        await active.exchange(1024);
        await sleep(200);
      }
      assert.equal(await within("the idle connection's reset", idleEnd, 1), "ECONNRESET");
      const reason = await waitForReason(p.client.process, connectionFailed, "DS_IDLE_TIMEOUT");
      assert.match(reason, /no bytes moved for 1000 ms/);
      console.log(
        `      the idle connection was reset; the active one was not (checked for ${Date.now() - idleSince} ms)`,
      );
      await active.finish();
      assert.equal(
        await metric(p.relay.metricsPort, "devicestreams_relay_connections_closed_total", 'reason="idle_timeout"'),
        1,
      );
    });

    // The lifetime counts from the relay's start, so it must outlast starting the agent and the
    // client: 3 s did not on a loaded 2-core machine, where each takes 2-3 s to start, nor did 10 s
    // at load average 21 with other suites running.
    it("--max-lifetime 20s: everything ends with DS_STREAM_EXPIRED and new connections are refused", async function () {
      this.timeout(90_000);
      const p = await start(["--max-lifetime", "20s"]);
      const held = await HeldConnection.open(p.client.port, "echo\n");
      const ended = new Promise<string>((resolve) => {
        held.socket.once("end", () => resolve("FIN"));
        held.socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      assert.equal(await within("the lifetime to end the connection", ended, 30_000), "ECONNRESET");
      const reason = await waitForReason(p.client.process, connectionFailed, "DS_STREAM_EXPIRED");
      assert.match(reason, /reached its maximum lifetime/);
      await expectReset(p.client.port);
      await waitFor(
        "the second refusal in the client's log",
        () => countMatches(p.client.process, reasonPattern(connectionFailed, "DS_STREAM_EXPIRED", "g")) >= 2,
      );
      // The agent is told too, and keeps being refused.
      await waitForReason(p.agent.process, "relay session lost; reattaching", "DS_STREAM_EXPIRED");
      assert.equal(await metric(p.relay.metricsPort, "devicestreams_relay_connections_total", 'result="expired"'), 1);
      assert.equal(await isHealthy(p.client.port, "echo\n"), false);
    });
  });
});
