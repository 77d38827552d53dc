// Failures of whole components: an agent killed mid-transfer, an agent or relay that stops
// answering without closing anything (SIGSTOP: only keepalive can notice), and a relay killed and
// restarted. Open connections must end with a reset within a bounded time, never hang and never
// end with a FIN that would pass a cut-off transfer for a complete one; the survivors must come
// back by themselves and carry new connections.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { type DataPlane, startAgent, startDataPlane, startRelay } from "../helpers/dataplane.ts";
import { freePort } from "../helpers/free-port.ts";
import {
  assertHealthy,
  connectionFailed,
  countIncoming,
  countMatches,
  dialMode,
  HeldConnection,
  isHealthy,
  type ModeTarget,
  metric,
  modeTarget,
  pump,
  waitForMetric,
  waitForReason,
} from "../helpers/robustness.ts";
import { waitFor, within } from "../helpers/wait.ts";

/** Waits for a connection to end; it must be a reset (a FIN fails at once), within `timeoutMs`. Returns the time taken. */
async function expectResetWithin(socket: Socket, timeoutMs: number, since = Date.now()): Promise<number> {
  const how = await within(
    "the connection to be reset",
    new Promise<string>((resolve) => {
      socket.once("end", () => resolve("FIN"));
      socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    }),
    timeoutMs,
  );
  // A reset shows as ECONNRESET on a read, or EPIPE on a write that meets it first.
  assert.ok(["ECONNRESET", "EPIPE"].includes(how), `a cut-off connection must be reset, not end with ${how}`);
  return Date.now() - since;
}

const attachedPattern = /INFO {2}agent attached to relay/;
const shortKeepalive = ["--keepalive-time", "1s", "--keepalive-timeout", "1s"];

describe("data plane: component failures", function () {
  this.timeout(90_000);
  let target: ModeTarget;
  let plane: DataPlane | undefined;
  /** Every process the test started (replacements too), for the failure report. */
  let logs: () => string = () => "";

  before(async () => {
    target = await modeTarget();
  });
  after(async () => {
    await target?.close();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") console.error(logs().slice(-30_000));
    await plane?.stop();
    plane = undefined;
  });

  const start = async (o: { relayArgs?: string[]; agentArgs?: string[]; clientArgs?: string[] } = {}) => {
    plane = await startDataPlane({ service: "t", allow: [`t=${target.address}`], ...o });
    logs = plane.logs;
    return plane;
  };

  it("an agent killed mid-transfer resets the open connections, and a new agent carries new ones", async () => {
    // The kernel resets the dead agent's TCP connection and the relay usually sees it at once. But
    // Node's HTTP/2 over TLS can miss a reset that lands while a write to the socket is pending
    // (https://github.com/nodejs/node/issues/61304: the session stays up as a zombie); then only the relay's keepalive
    // notices, so it is short here to keep the bound tight.
    const p = await start({ relayArgs: shortKeepalive });
    // Traffic both ways: two uploads pumped into echoes, two downloads flooded by the target.
    const uploads = await Promise.all([dialMode(p.client.port, "echo"), dialMode(p.client.port, "echo")]);
    const downloads = await Promise.all([dialMode(p.client.port, "flood"), dialMode(p.client.port, "flood")]);
    // And one idle: with nothing in flight, only the tunnel can tell it the far end is gone.
    const idle = (await HeldConnection.open(p.client.port, "echo\n")).socket;
    const pumps = uploads.map((s) => pump(s));
    const received = [...uploads, ...downloads].map(countIncoming);
    const sockets = [...uploads, ...downloads, idle];
    await waitFor("every connection to be moving bytes", () => received.every((n) => n() > 1024 * 1024));

    // Watching starts before the kill, so a FIN or reset that comes first is not missed.
    const ends = sockets.map((s) => expectResetWithin(s, 10_000));
    const killedAt = Date.now();
    await p.agent.process.stop("SIGKILL");
    await Promise.all(ends);
    const took = Date.now() - killedAt;
    console.log(
      `      all 5 connections reset ${took} ms after the kill (uploaded ${pumps.map((x) => x.written() >> 20)} MiB)`,
    );
    assert.ok(took < 5_000, `the resets took ${took} ms`);
    const reason = await waitForReason(p.client.process, connectionFailed, "DS_PEER_LOST");
    assert.match(reason, /the device's agent went away/);
    await waitFor("the relay to count the device detached", async () =>
      (await metric(p.relay.metricsPort, "devicestreams_relay_device_attached")) === 0 &&
      (await metric(p.relay.metricsPort, "devicestreams_relay_connections_active")) === 0
        ? true
        : undefined,
    );

    const replacement = await startAgent(p.stream, p.relay.address, [`t=${target.address}`]);
    stopAfterTest(replacement.process);
    const earlier = logs;
    logs = () => `${earlier()}\n----- replacement agent -----\n${replacement.process.logs}`;
    await waitForMetric(p.relay.metricsPort, "devicestreams_relay_device_attached", 1);
    const held = await HeldConnection.open(p.client.port, "echo\n");
    await held.exchange(4 * 1024 * 1024);
    await held.finish();
  });

  it("keepalive: a frozen agent (SIGSTOP) is dropped and its connections reset; it reattaches after SIGCONT", async () => {
    const p = await start({ relayArgs: shortKeepalive, agentArgs: shortKeepalive });
    const held = await HeldConnection.open(p.client.port, "echo\n");
    const socket = held.socket;
    p.agent.process.signal("SIGSTOP");
    try {
      const stoppedAt = Date.now();
      const took = await expectResetWithin(socket, 10_000, stoppedAt);
      console.log(`      the relay dropped the frozen agent and reset the connection in ${took} ms`);
      assert.ok(took < 10_000);
      await waitFor("the relay's metrics to show no device", async () =>
        (await metric(p.relay.metricsPort, "devicestreams_relay_device_attached")) === 0 &&
        (await metric(p.relay.metricsPort, "devicestreams_relay_connections_active")) === 0
          ? true
          : undefined,
      );
      await p.relay.process.waitFor(/device detached/);
      const reason = await waitForReason(p.client.process, connectionFailed, "DS_PEER_LOST");
      assert.match(reason, /agent went away/);
    } finally {
      p.agent.process.signal("SIGCONT");
    }
    await waitFor("the agent to reattach", () => countMatches(p.agent.process, attachedPattern) >= 2, 20_000);
    await waitForMetric(p.relay.metricsPort, "devicestreams_relay_device_attached", 1);
    await assertHealthy(p.client.port, 1024 * 1024, "echo\n");
  });

  it("keepalive: a frozen client (SIGSTOP) is dropped and the target sees a reset, not a FIN", async () => {
    const p = await start({ relayArgs: shortKeepalive, clientArgs: shortKeepalive });
    const first = target.connections.length;
    const held = await HeldConnection.open(p.client.port, "echo\n");
    const atTarget = target.connections[first]!;
    p.client.process.signal("SIGSTOP");
    try {
      const stoppedAt = Date.now();
      const how = await within("the target's connection to end", atTarget.ending, 10_000);
      const took = Date.now() - stoppedAt;
      console.log(`      the relay dropped the frozen client and reset the target's connection in ${took} ms`);
      assert.equal(how, "ECONNRESET", "a frozen client's connection reached the target as a FIN, as if complete");
      await waitFor("the relay's metrics to show no connection", async () =>
        (await metric(p.relay.metricsPort, "devicestreams_relay_connections_active")) === 0 ? true : undefined,
      );
      await p.relay.process.waitFor(
        /connection closed connection=\d+ reason=peer_lost detail="DS_PEER_LOST: the client went away/,
      );
    } finally {
      p.client.process.signal("SIGCONT");
      held.destroy();
    }
    await waitFor("a new connection through the thawed client", () => isHealthy(p.client.port, "echo\n"), 15_000, 200);
  });

  it("keepalive: the client notices a frozen relay (SIGSTOP) and resets its local connection", async () => {
    const p = await start({ relayArgs: shortKeepalive, agentArgs: shortKeepalive, clientArgs: shortKeepalive });
    const held = await HeldConnection.open(p.client.port, "echo\n");
    p.relay.process.signal("SIGSTOP");
    try {
      const took = await expectResetWithin(held.socket, 10_000);
      console.log(`      the client gave up on the frozen relay and reset the connection in ${took} ms`);
      const reason = await waitForReason(p.client.process, connectionFailed, "DS_RELAY_LOST");
      assert.match(reason, /keepalive/);
    } finally {
      p.relay.process.signal("SIGCONT");
    }
    // The agent, frozen out just as long, may have kept its session (its keepalive raced the thaw)
    // or reattached: either way the stream must carry new connections again.
    await waitFor("a new connection through the thawed relay", () => isHealthy(p.client.port, "echo\n"), 20_000, 200);
    await waitForMetric(p.relay.metricsPort, "devicestreams_relay_device_attached", 1);
  });

  it("a relay killed and restarted on the same port is found again by the agent and the client", async () => {
    const port = await freePort();
    const p = await start({ relayArgs: ["--listen", `127.0.0.1:${port}`] });
    const held = await HeldConnection.open(p.client.port, "echo\n");
    const killedAt = Date.now();
    // Watching starts before the kill, so a reset that comes before the kill's exit status is not missed.
    const reset = expectResetWithin(held.socket, 10_000, killedAt);
    await p.relay.process.stop("SIGKILL");
    const took = await reset;
    console.log(`      the client reset its connection ${took} ms after the relay died`);
    const reason = await waitForReason(p.client.process, connectionFailed, "DS_RELAY_LOST");
    assert.match(reason, /the connection to the relay was lost/);
    await p.agent.process.waitFor(/relay session lost; reattaching/);

    const relay = await startRelay(p.stream, ["--listen", `127.0.0.1:${port}`]);
    stopAfterTest(relay.process);
    const earlier = logs;
    logs = () => `${earlier()}\n----- restarted relay -----\n${relay.process.logs}`;
    const restartedAt = Date.now();
    await waitFor("the agent to reattach", () => countMatches(p.agent.process, attachedPattern) >= 2, 20_000);
    console.log(`      the agent reattached ${Date.now() - restartedAt} ms after the restart`);
    await waitForMetric(relay.metricsPort, "devicestreams_relay_device_attached", 1);
    // The client's channel reconnects on its own; the first connection after it may not.
    await waitFor(
      "a new connection through the restarted relay",
      () => isHealthy(p.client.port, "echo\n"),
      15_000,
      200,
    );
    await assertHealthy(p.client.port, 1024 * 1024, "echo\n");
  });
});
