// Faults of the control plane during a transfer: the leading operator killed, the API server
// stopped for a while. The data plane does not need either once a stream is open, so transfers
// through an open stream must carry on; a failure must still come back as an error, never as a
// hang or wrong bytes. Real processes: API server, etcd, two operator replicas (the hub in each),
// an enrolled agent in hub mode, the kubelet stand-in running the relay Pod.

import type { DeviceStream } from "../../api/v1alpha1.ts";
import { forwardLocalPort, type LocalPortForward } from "../../client/local-port.ts";
import { type StreamAccess, streamAccess } from "../../client/stream-lookup.ts";
import { collectionPath, KubeClient } from "../../kube/client.ts";
import { createLogger } from "../../runtime/log.ts";
import { type HubAgent, startHubAgent } from "../../test/helpers/hub-agent.ts";
import { System } from "../../test/helpers/system.ts";
import { echoServer, type TcpTarget } from "../../test/helpers/tcp-targets.ts";
import { waitFor } from "../../test/helpers/wait.ts";
import { streams } from "../../test/operator/env.ts";
import type { FaultSpec, LoopOptions } from "./data-plane.ts";
import { type RepResult, randomBetween, runRep } from "./rep.ts";

const ns = "faults";
const clientKeepalive = { timeMs: 2000, timeoutMs: 2000 };
// The relay Pod keeps the operator's defaults (10 s + 5 s); the client's own is 2 s + 2 s.
const budgetMs = 15_000;

export const controlPlaneFaults: FaultSpec[] = [
  {
    name: "leader-kill",
    description: "leading operator replica `kill -9` (its hub with it); restarted after the rep",
    budgetMs,
    budgetWhy: "relay keepalive (10 s + 5 s)",
  },
  {
    name: "apiserver-stop",
    description: "kube-apiserver stopped for the outage, transfers running throughout, then started",
    budgetMs,
    budgetWhy: "relay keepalive (10 s + 5 s)",
  },
];

export interface ControlPlaneOptions extends LoopOptions {
  outageMs: number;
  /** Transfers run back to back during each API server outage, beyond the one the stop hits. */
  onOutageTransfer(r: RepResult): void;
}

export async function runControlPlaneFaults(
  names: string[],
  o: ControlPlaneOptions,
): Promise<Map<string, RepResult[]>> {
  const results = new Map<string, RepResult[]>();
  const log = createLogger("faults");
  let target: TcpTarget | undefined;
  let sys: System | undefined;
  let edge: HubAgent | undefined;
  let admin: KubeClient | undefined;
  let access: StreamAccess | undefined;
  let forward: LocalPortForward | undefined;
  try {
    target = await echoServer();
    sys = await System.start({ replicas: 2, namespace: ns });
    admin = new KubeClient(sys.env.cluster.kubeConfig);
    edge = await startHubAgent(sys, { namespace: ns, device: "edge-1", allow: [`echo=${target.address}`] });
    await admin.create(
      collectionPath(streams, ns),
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        metadata: { name: "faults" },
        // The source token, not a user's: a new connection during an API server outage would need
        // a TokenReview, and these faults measure the data plane, which must not depend on it.
        spec: { device: "edge-1", service: "echo", access: { sourceToken: true } },
      },
      "faults",
    );
    const ds = await waitFor(
      "the stream to be Ready",
      async () => {
        const s = await sys!.stream(ns, "faults");
        return s.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ? s : undefined;
      },
      120_000,
    );
    access = await streamAccess(admin, ds as DeviceStream, { keepalive: clientKeepalive });
    forward = await forwardLocalPort(access.relay, access.credential, "127.0.0.1", 0, log);
    const port = forward.port;
    const s = sys;
    const rep = (inject: () => Promise<void> | void, bytes = o.bytes()) =>
      runRep({
        port,
        bytes,
        bytesPerSecond: o.bytesPerSecond,
        faultDelayMs: randomBetween(100, (bytes / o.bytesPerSecond) * 1000 * 0.9),
        inject,
        hangAfterMs: budgetMs + o.graceMs,
      });

    if (names.includes("leader-kill")) {
      const reps: RepResult[] = [];
      results.set("leader-kill", reps);
      for (let i = 0; i < o.reps; i++) {
        const leader = await s.waitForLeader();
        const index = s.operators.indexOf(leader);
        const r = await rep(() => {
          leader.process.child.kill("SIGKILL");
        });
        reps.push(r);
        o.onRep("leader-kill", i, r);
        await leader.process.exited;
        // The next rep needs both replicas again: the restarted one serving its hub.
        const again = await s.startOperator(index);
        await waitFor(
          `${again.process.name} to serve the hub`,
          () => /hub serving/.test(again.process.tail(400)),
          60_000,
        );
        await s.waitForLeader();
      }
    }
    if (names.includes("apiserver-stop")) {
      const reps: RepResult[] = [];
      results.set("apiserver-stop", reps);
      for (let i = 0; i < o.reps; i++) {
        let stoppedAt = 0;
        const r = await rep(async () => {
          stoppedAt = Date.now();
          await s.env.cluster.stopApiServer();
        });
        reps.push(r);
        o.onRep("apiserver-stop", i, r);
        // More transfers while it stays down: none may hang or deliver wrong bytes.
        while (Date.now() - stoppedAt < o.outageMs) {
          o.onOutageTransfer(await rep(() => {}, o.bytes()));
        }
        await s.env.cluster.startApiServer();
        await s.waitForLeader();
      }
    }
  } catch (err) {
    if (sys) process.stderr.write(`${await sys.dump()}\n----- agent -----\n${edge?.agent?.logs.slice(-10_000)}\n`);
    throw err;
  } finally {
    await forward?.close();
    access?.relay.close();
    admin?.close();
    await edge?.stop();
    await sys?.stop();
    await target?.close();
  }
  return results;
}
