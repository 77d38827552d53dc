// Who may hold a connection to the hub, and for how long without a successful Enroll or Session:
// a cap per source address, a handshake deadline and a deadline for the first accepted call. An
// enrolled agent's control session runs through every case and is never cut.
import assert from "node:assert/strict";
import type { RunningOperator } from "../../operator/main.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { h2Session, idleTls, rawGrpcCall, silentTcp, type Watched } from "../helpers/raw-peers.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv } from "../operator/env.ts";
import { agentFiles, caPem, createDevice, getDevice, hubPort, metricValue, startAgent } from "./hub-env.ts";

const refused = "devicestreams_hub_grpc_connections_refused_total";
const perSource = 4;

describe("hub: connection caps and deadlines", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  let port: number;
  let ca: string;
  let agent: ComponentProcess | undefined;
  const opened: Array<{ socket: { destroy(): void } }> = [];
  const count = (reason: string) => metricValue(op, refused, `reason="${reason}"`);

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator([
      `--hub-max-connections-per-source=${perSource}`,
      "--hub-handshake-timeout=2s",
      "--hub-unauthenticated-timeout=3s",
    ]);
    port = await hubPort(op);
    ca = (await caPem(env)).certPem;
    const ns = await env.namespace("caps");
    await createDevice(env, ns, "pump");
    agent = startAgent(port, ns, "pump", await agentFiles(env, ns, "pump"), ["ssh=127.0.0.1:22"]);
    await waitFor("Device caps/pump connected", async () => (await getDevice(env, ns, "pump")).status?.connected);
  });
  afterEach(function () {
    for (const o of opened.splice(0)) o.socket.destroy();
    if (this.currentTest?.state === "failed" && agent) process.stderr.write(`--- agent ---\n${agent.logs}\n`);
  });
  after(async () => {
    await agent?.stop();
    await op?.stop();
    await env?.stop();
  });

  it("refuses a source's connection beyond its cap while other sources still get in", async () => {
    const before = await count("max_per_source");
    const mine: Watched<import("node:tls").TLSSocket>[] = [];
    for (let i = 0; i < perSource; i++) mine.push(await idleTls(port, ca, "127.8.0.1"));
    opened.push(...mine);
    assert.ok(mine.every((w) => w.socket.authorized));
    const extra = await idleTls(port, ca, "127.8.0.1");
    opened.push(extra);
    await extra.closed;
    assert.equal(extra.socket.authorized, false, "the connection over the cap never finished its handshake");
    assert.equal(await count("max_per_source"), before + 1);
    const other = await idleTls(port, ca, "127.8.0.2");
    opened.push(other);
    assert.equal(other.socket.authorized, true, "another source is still served");
  });

  it("closes a connection that never starts its TLS handshake", async () => {
    const before = await count("handshake_timeout");
    const silent = await silentTcp(port, "127.8.1.1");
    opened.push(silent);
    await silent.closed;
    assert.equal(await count("handshake_timeout"), before + 1);
  });

  it("closes a session that makes no call, or only a refused Enroll", async () => {
    const before = await count("unauthenticated_timeout");
    const idle = await h2Session(port, ca, "127.8.2.1");
    const enroller = await h2Session(port, ca, "127.8.2.2");
    opened.push({ socket: idle.session }, { socket: enroller.session });
    // An empty Enroll request: refused (no such Device), so it does not count as authenticated.
    const call = await rawGrpcCall(enroller.session, "/devicestreams.v1alpha1.Hub/Enroll", {}, Buffer.alloc(0));
    assert.notEqual(call.status, "0", "the empty enrolment is refused");
    await Promise.all([idle.closed, enroller.closed]);
    assert.equal(await count("unauthenticated_timeout"), before + 2);
  });

  it("never cuts the enrolled agent's control session", async () => {
    assert.ok(agent);
    await new Promise((r) => setTimeout(r, 3_500)); // past the deadline, whatever the cases above took
    assert.equal(
      [...agent.logs.matchAll(/control session with the hub is open/g)].length,
      1,
      "the agent opened its session once and kept it past every deadline",
    );
  });
});
