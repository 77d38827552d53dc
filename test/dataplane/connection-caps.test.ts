// Who may hold a connection to the relay's gRPC port, and for how long without authenticating: a
// cap per source address and in all, a handshake deadline, a deadline for the first authenticated
// call, and the wide HTTP/2 window only after it. A healthy stream with a connection held open
// runs through every case; the agent's long-lived attach must never be cut.
import assert from "node:assert/strict";
import { relayServicePath } from "../../proto/metadata.ts";
import { type DataPlane, startDataPlane } from "../helpers/dataplane.ts";
import {
  h2Session,
  idleTls,
  loopback,
  rawGrpcCall,
  silentTcp,
  stalledHandshake,
  type Watched,
} from "../helpers/raw-peers.ts";
import { assertHealthy, countMatches, HeldConnection, metric, waitForMetric } from "../helpers/robustness.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const refused = "devicestreams_relay_grpc_connections_refused_total";
const perSource = 6;
const total = 24;

describe("data plane: connection caps and deadlines at the relay", function () {
  this.timeout(60_000);
  let echo: TcpTarget;
  let plane: DataPlane;
  let held: HeldConnection;
  let opened: Array<{ socket: { destroy(): void } }> = [];
  const relayPort = () => Number(plane.relay.address.split(":")[1]);
  const count = async (reason: string) => (await metric(plane.relay.metricsPort, refused, `reason="${reason}"`)) ?? 0;

  before(async () => {
    echo = await echoServer();
    plane = await startDataPlane({
      service: "echo",
      allow: [`echo=${echo.address}`],
      relayArgs: [
        `--max-grpc-connections=${total}`,
        `--max-grpc-connections-per-source=${perSource}`,
        "--handshake-timeout=2s",
        "--unauthenticated-timeout=4s",
      ],
    });
  });
  after(async () => {
    await plane?.stop();
    await echo?.close();
  });
  // Held open through each case (connections of a test are closed after it: test/helpers/cleanup.ts).
  beforeEach(async () => {
    held = await HeldConnection.open(plane.client.port);
  });
  afterEach(async function () {
    for (const o of opened) o.socket.destroy();
    opened = [];
    if (this.currentTest?.state === "failed") console.error(plane.logs().slice(-15_000));
    try {
      // Everything a case opened is gone before the next one counts.
      await waitForMetric(plane.relay.metricsPort, "devicestreams_relay_grpc_connections_open", 2, "", 20_000);
      await held.exchange();
      await held.finish();
    } catch (err) {
      console.error(plane.logs().slice(-15_000));
      throw err;
    }
  });

  it("refuses a source's connection beyond its cap while other sources still get in", async () => {
    const before = await count("max_per_source");
    const mine: Watched<import("node:tls").TLSSocket>[] = [];
    for (let i = 0; i < perSource; i++) mine.push(await idleTls(relayPort(), plane.stream.ca.certPem, "127.9.0.1"));
    opened.push(...mine);
    assert.ok(
      mine.every((w) => !w.isClosed()),
      `the first ${perSource} connections from one source are served`,
    );
    const extra = await idleTls(relayPort(), plane.stream.ca.certPem, "127.9.0.1");
    opened.push(extra);
    await extra.closed;
    assert.equal(extra.socket.authorized, false, "the connection over the cap never finished its handshake");
    assert.equal(await count("max_per_source"), before + 1);
    const other = await idleTls(relayPort(), plane.stream.ca.certPem, "127.9.0.2");
    opened.push(other);
    assert.equal(other.socket.authorized, true, "another source is still served");
  });

  it("refuses connections beyond the global cap", async () => {
    const before = await count("max_connections");
    // Two are the healthy stream's agent and client; fill the rest from distinct sources.
    for (let i = 0; i < total - 2; i++) opened.push(await silentTcp(relayPort(), loopback(10, i)));
    await waitForMetric(plane.relay.metricsPort, "devicestreams_relay_grpc_connections_open", total);
    const extra = await silentTcp(relayPort(), loopback(11, 0));
    opened.push(extra);
    await extra.closed;
    assert.equal(await count("max_connections"), before + 1);
  });

  it("closes a connection that never starts its TLS handshake", async () => {
    const before = await count("handshake_timeout");
    const silent = await silentTcp(relayPort(), "127.9.1.1");
    opened.push(silent);
    await silent.closed;
    assert.equal(await count("handshake_timeout"), before + 1);
  });

  it("closes a TLS handshake that never finishes", async () => {
    const before = await count("handshake_timeout");
    const stalled = await stalledHandshake(relayPort(), "127.9.1.2");
    opened.push(stalled);
    await stalled.closed;
    assert.equal(await count("handshake_timeout"), before + 1);
  });

  it("closes an HTTP/2 session that makes no call, or only refused ones, and keeps its window narrow", async () => {
    const before = await count("unauthenticated_timeout");
    const idle = await h2Session(relayPort(), plane.stream.ca.certPem, "127.9.2.1");
    const refusedCaller = await h2Session(relayPort(), plane.stream.ca.certPem, "127.9.2.2");
    opened.push({ socket: idle.session }, { socket: refusedCaller.session });
    const call = await rawGrpcCall(refusedCaller.session, `${relayServicePath}/Connect`, {
      authorization: "Bearer not-a-token",
    });
    assert.equal(call.status, "16", "the call without a valid token is refused (UNAUTHENTICATED)");
    // HTTP/2's default connection window: an unauthenticated peer may not make the relay buffer more.
    assert.equal(idle.session.state.remoteWindowSize, 65_535);
    assert.equal(refusedCaller.session.state.remoteWindowSize, 65_535);
    await Promise.all([idle.closed, refusedCaller.closed]);
    assert.equal(await count("unauthenticated_timeout"), before + 2);
  });

  it("keeps a session whose call authenticated, and widens its window", async () => {
    const session = await h2Session(relayPort(), plane.stream.ca.certPem, "127.9.3.1");
    opened.push({ socket: session.session });
    // A tunnelled connection's call: it waits for the device, so no response comes; its window does.
    void rawGrpcCall(session.session, `${relayServicePath}/Connect`, {
      authorization: `Bearer ${plane.stream.sourceToken}`,
    });
    await waitFor(
      `the authenticated session's window to widen (${session.session.state.remoteWindowSize} bytes)`,
      () => (session.session.state.remoteWindowSize ?? 0) > 1024 * 1024,
    );
    // Past both deadlines, it is still open.
    await new Promise((r) => setTimeout(r, 5_000));
    assert.equal(session.session.closed || session.session.destroyed, false, "the authenticated session is open");
  });

  it("never cuts the agent's attach nor the client's channel", async () => {
    await held.exchange();
    await assertHealthy(plane.client.port);
    assert.equal(countMatches(plane.agent.process, /attached to relay/), 1, "the agent attached once, never again");
    assert.equal(plane.relay.process.proc.exitCode, null, "the relay is still running");
  });
});
