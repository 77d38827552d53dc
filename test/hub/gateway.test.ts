// Devices reach the hub through the gateway: an agent enrols and holds its control session via
// `devicestreams gateway`, which routes the hub's name to the hub without terminating TLS (the
// agent checks the hub's own certificate, and the hub sees the device's client certificate).
import assert from "node:assert/strict";
import { join } from "node:path";
import type { RunningOperator } from "../../operator/main.ts";
import { ComponentProcess } from "../helpers/component-process.ts";
import { type Gateway, startGateway } from "../helpers/gateway.ts";
import { metric } from "../helpers/robustness.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv } from "../operator/env.ts";
import { agentFiles, createDevice, getDevice, hubPort } from "./hub-env.ts";

const hubName = "hub.gateway.test";

describe("hub through the gateway", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  let gateway: Gateway;
  let agent: ComponentProcess | undefined;

  before(async () => {
    env = await OperatorEnv.start();
    // The hub's certificate names the gateway name only: an agent that reached the hub another way
    // under another name would fail its TLS check.
    op = await env.startOperator([`--hub-dns-names=${hubName}`]);
    gateway = await startGateway([`--route=${hubName}=127.0.0.1:${await hubPort(op)}`]);
  });
  after(async () => {
    await agent?.stop();
    await gateway?.process.stop();
    await op?.stop();
    await env?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state !== "failed") return;
    for (const p of [agent, gateway.process])
      if (p) process.stderr.write(`--- ${p.name} ---\n${p.logs.slice(-4000)}\n`);
  });

  it("an agent enrols and holds its control session through the gateway", async () => {
    const ns = await env.namespace("via-gateway");
    await createDevice(env, ns, "pump");
    const setup = await agentFiles(env, ns, "pump");
    agent = new ComponentProcess("agent-pump", [
      "agent",
      `--hub=${gateway.address}`,
      `--hub-server-name=${hubName}`,
      `--hub-ca=${setup.caFile}`,
      `--device=${ns}/pump`,
      `--state-dir=${join(setup.dir, "state")}`,
      `--enrollment-token-file=${setup.tokenFile}`,
      "--metrics-listen=127.0.0.1:0",
      "--heartbeat-interval=1s",
      "--allow=ssh=127.0.0.1:22",
    ]);
    await agent.waitFor(/enrolled with the hub/, 60_000);
    const dev = await waitFor("Device connected through the gateway", async () => {
      const d = await getDevice(env, ns, "pump");
      return d.status?.connected === true ? d : undefined;
    });
    assert.deepEqual(
      dev.status?.services?.map((s) => s.name),
      ["ssh"],
    );
    // Enrolment and the session each came through the gateway, routed by the hub's name.
    const routed = await metric(gateway.metricsPort, "devicestreams_gateway_connections_total", 'outcome="routed"');
    assert.ok((routed ?? 0) >= 1, `routed ${routed}`);
    const held = await metric(gateway.metricsPort, "devicestreams_gateway_connections_active", 'phase="routed"');
    assert.ok((held ?? 0) >= 1, "the control session is held open through the gateway");
  });
});
