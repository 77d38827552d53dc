// A stream carried end to end through the hub's offer: a real relay process run from the
// stream's own Secret (standing in for its Pod, on a loopback address of its own), an agent
// enrolled through the real flow, a client; then the usage the relay reports in status and
// metrics, and the bytes-per-day cap ending the stream.
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { core, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { ComponentProcess } from "../helpers/component-process.ts";
import { roundTrip } from "../helpers/tcp-client.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv } from "../operator/env.ts";
import { agentFiles, createDevice, decode, hubPort, startAgent } from "./hub-env.ts";

describe("hub: a stream carried through an offer, and its usage", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  let port: number;
  let echo: TcpTarget;
  const procs: ComponentProcess[] = [];

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator(["--usage-poll-interval=500ms"]);
    port = await hubPort(op);
    echo = await echoServer();
  });

  afterEach(function () {
    if (this.currentTest?.state !== "failed") return;
    for (const p of procs) process.stderr.write(`--- ${p.name} ---\n${p.logs.slice(-4000)}\n`);
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await echo?.close();
    await op?.stop();
    await env?.stop();
  });

  /** Runs the relay Pod's container as a local process on its own loopback IP and reports the Pod ready. */
  async function runRelayPod(
    ns: string,
    ds: DeviceStream,
  ): Promise<{ ip: string; dir: string; relay: ComponentProcess; restart(): Promise<ComponentProcess> }> {
    const pod = await waitFor(`relay Pod of ${ds.metadata.name}`, () => env.getPod(ns, `${ds.metadata.name}-relay`));
    const secret = await waitFor("the credentials Secret", async () => {
      const s = await env.getStream(ns, ds.metadata.name!);
      const name = s.status?.relay?.credentialsSecret;
      return name ? env.admin.get<Secret>(objectPath(core.secrets, ns, name)) : undefined;
    });
    const dir = mkdtempSync(join(env.cluster.dataDir, "relay-"));
    for (const k of ["relay.json", "tls.crt", "tls.key", "ca.crt", "source-token"]) {
      writeFileSync(join(dir, k), decode(secret, k), { mode: 0o600 });
    }
    const ip = `127.${randomInt(1, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;
    // The container's args run under the image's entrypoint, the CLI (as ComponentProcess runs it).
    const podArgs = (pod.spec as { containers: Array<{ args: string[] }> }).containers[0]!.args;
    const args = podArgs.map((a) => a.replace("/etc/devicestreams/relay", dir).replace("0.0.0.0", ip));
    const start = async () => {
      const relay = new ComponentProcess(`relay-${ds.metadata.name}`, args);
      procs.push(relay);
      await relay.waitFor(/ready/);
      return relay;
    };
    const relay = await start();
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    await env.admin.apply(
      `${objectPath(core.pods, ns, pod.metadata.name!)}/status`,
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: pod.metadata.name, namespace: ns },
        status: {
          phase: "Running",
          podIP: ip,
          conditions: [
            { type: "Ready", status: "True", lastTransitionTime: now },
            { type: "ContainersReady", status: "True", lastTransitionTime: now },
          ],
        },
      },
      "test-kubelet",
    );
    // A container restart: the same Pod, the same address, a new process counting from zero.
    return { ip, dir, relay, restart: start };
  }

  it("offers the stream, the agent attaches (Connected), traffic shows in status and metrics, and the byte cap ends it", async () => {
    const ns = await env.namespace("usage");
    await createDevice(env, ns, "uplink");
    const setup = await agentFiles(env, ns, "uplink");
    const agent = startAgent(port, ns, "uplink", setup, [`echo=127.0.0.1:${echo.port}`]);
    procs.push(agent);
    const ds = await env.createStream(ns, "tun", {
      device: "uplink",
      service: "echo",
      limits: { maxConnections: 10, bytesPerDay: 3 * 1024 * 1024 },
      // `devicestreams connect` presents the Secret's source token, not a user's Kubernetes token.
      access: { sourceToken: true },
    });
    const { ip, dir } = await runRelayPod(ns, ds);

    const connected = await waitFor("the stream to be Connected with connectedAt", async () => {
      const s = await env.getStream(ns, "tun");
      return s.status?.phase === "Connected" && s.status.connectedAt ? s : undefined;
    });
    const client = new ComponentProcess("connect", [
      "connect",
      `--relay=${ip}:8443`,
      `--ca=${join(dir, "ca.crt")}`,
      `--server-name=${connected.status!.relay!.tlsServerName}`,
      `--token-file=${join(dir, "source-token")}`,
      "--local=127.0.0.1:0",
    ]);
    procs.push(client);
    const localPort = Number((await client.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);

    const payload = randomBytes(1024 * 1024);
    const back = await roundTrip(localPort, payload);
    assert.ok(back.data.equals(payload), "the echo came back byte-exact");
    const withBytes = await waitFor("status.bytes after traffic", async () => {
      const s = await env.getStream(ns, "tun");
      return (s.status?.bytes?.toDevice ?? 0) >= payload.length && (s.status?.bytes?.fromDevice ?? 0) >= payload.length
        ? s
        : undefined;
    });
    assert.ok(withBytes.status!.lastActivityAt, "lastActivityAt is set");
    assert.ok(Date.parse(withBytes.status!.lastActivityAt!) >= Date.parse(connected.status!.connectedAt!) - 2000);
    const metrics = await (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
    const total = Number(/devicestreams_operator_relay_bytes_total\{direction="to_device"\} (\d+)/.exec(metrics)?.[1]);
    assert.ok(total >= payload.length, `operator metric to_device=${total}`);

    // 2 MiB more makes 4 MiB within the day, over the 3 MiB cap.
    await roundTrip(localPort, randomBytes(1024 * 1024)).catch(() => undefined);
    const ended = await waitFor("the stream to end for its byte cap", async () => {
      const s = await env.getStream(ns, "tun");
      return s.status?.phase === "Expired" ? s : undefined;
    });
    const ready = ended.status!.conditions!.find((c) => c.type === "Ready")!;
    assert.equal(ready.reason, "BytesPerDayExceeded");
    assert.match(ready.message, /over its limits\.bytesPerDay of 3145728/);
    await agent.waitFor(/stopped serving a stream/, 15_000);
  });

  it("a relay killed and restarted mid-stream: status.bytes keeps counting on from where it was", async () => {
    const ns = await env.namespace("usage-restart");
    await createDevice(env, ns, "uplink");
    const setup = await agentFiles(env, ns, "uplink");
    const agent = startAgent(port, ns, "uplink", setup, [`echo=127.0.0.1:${echo.port}`]);
    procs.push(agent);
    const ds = await env.createStream(ns, "tun", { device: "uplink", service: "echo", access: { sourceToken: true } });
    const { ip, dir, relay, restart } = await runRelayPod(ns, ds);
    const connected = await waitFor("the stream to be Connected", async () => {
      const s = await env.getStream(ns, "tun");
      return s.status?.phase === "Connected" ? s : undefined;
    });
    const client = new ComponentProcess("connect", [
      "connect",
      `--relay=${ip}:8443`,
      `--ca=${join(dir, "ca.crt")}`,
      `--server-name=${connected.status!.relay!.tlsServerName}`,
      `--token-file=${join(dir, "source-token")}`,
      "--local=127.0.0.1:0",
    ]);
    procs.push(client);
    const localPort = Number((await client.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
    const first = randomBytes(1024 * 1024);
    assert.ok((await roundTrip(localPort, first)).data.equals(first));
    const before = await waitFor("status.bytes of the first relay run", async () => {
      const s = await env.getStream(ns, "tun");
      const b = s.status?.bytes;
      return (b?.toDevice ?? 0) >= first.length && (b?.fromDevice ?? 0) >= first.length ? s.status! : undefined;
    });

    await relay.stop("SIGKILL");
    await restart();
    // The agent and the client find the restarted relay by themselves; the first tries may fail.
    const second = randomBytes(512 * 1024);
    await waitFor(
      "an echo through the restarted relay",
      async () => (await roundTrip(localPort, second, 10_000)).data.equals(second),
      60_000,
      200,
    );
    const after = await waitFor("status.bytes to count the second run on top of the first", async () => {
      const s = await env.getStream(ns, "tun");
      // Both ways: a read of the relay's counters can fall between the echo's two halves.
      const c = s.status?.relayCounters;
      return c?.incarnation !== before.relayCounters?.incarnation &&
        (c?.toDevice ?? 0) >= second.length &&
        (c?.fromDevice ?? 0) >= second.length
        ? s.status!
        : undefined;
    });
    assert.ok(before.relayCounters?.incarnation, "status names the relay run it counted");
    for (const way of ["toDevice", "fromDevice"] as const) {
      assert.ok(
        after.bytes![way]! >= before.bytes![way]! + second.length,
        `bytes.${way}: ${after.bytes![way]} after the restart, ${before.bytes![way]} before, ${second.length} since`,
      );
    }
  });
});
