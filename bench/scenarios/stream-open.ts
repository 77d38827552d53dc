// DeviceStream created → first byte: the whole system on loopback as the hub end-to-end test runs
// it (test/helpers/system.ts: kube-apiserver, etcd, controller-manager, two operator replicas with
// their hubs, the kubelet stand-in running relay Pods as local processes), an agent in hub mode
// enrolled with the Device's token, and sshd on the device side, whose banner is the first byte.
// Each time: `kubectl apply` of a DeviceStream, then connect through it as the plugin does until
// sshd's banner arrives; the stream is deleted and gone before the next (not timed).
// The baseline, interleaved with it: what opening a tunnel costs with OpenSSH, from starting a
// fresh `ssh -N -R` (bench/baselines/ssh-reverse.ts) to sshd's banner through the forwarded port.
// Both sides poll every 20 ms until the first byte comes.
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { KubeClient } from "../../kube/client.ts";
import type { Logger } from "../../runtime/log.ts";
import { freePort } from "../../test/helpers/free-port.ts";
import {
  type HubAgent,
  receivesByte,
  type StreamOpen,
  startHubAgent,
  timeStreamOpen,
} from "../../test/helpers/hub-agent.ts";
import { controlPlaneBinaries } from "../../test/helpers/k8s-binaries.ts";
import { type Sshd, startSshd } from "../../test/helpers/sshd.ts";
import { hubAvailable, System } from "../../test/helpers/system.ts";
import { startReverseSsh, waitForward } from "../baselines/ssh-reverse.ts";
import { percentile } from "../workloads.ts";

export interface StreamOpenRun {
  opens: number;
  /** From just before `kubectl apply` to the first byte (ms). */
  totalP50Ms: number;
  totalP99Ms: number;
  /** The same minus the relay Pod's start (the kubelet stand-in's readyAt − seenAt). */
  withoutPodP50Ms: number;
  withoutPodP99Ms: number;
  /** The relay Pod's start alone. */
  podStartP50Ms: number;
  podStartP99Ms: number;
  /** From starting `ssh -N -R` to the first byte through the forwarded port (ms). */
  sshOpenP50Ms: number;
  sshOpenP99Ms: number;
  samples: { totalMs: number[]; withoutPodMs: number[]; podStartMs: number[]; sshOpenMs: number[] };
}

const skip = "or skip this scenario with --stream-opens 0";

/** Fails with the cause and the fix when the scenario cannot run here; cheap, so the run fails before its other scenarios. */
export async function streamOpenPrerequisites(): Promise<void> {
  if (!hubAvailable)
    throw new Error(
      `stream-open: this checkout's operator has no hub (no --hub-listen in operator/options.ts), which the scenario needs; skip it with --stream-opens 0.`,
    );
  if (spawnSync("kubectl", ["version", "--client"], { stdio: "ignore" }).status !== 0) {
    throw new Error(
      `stream-open: kubectl is not on the PATH (the scenario applies DeviceStreams with it): install it, ${skip}.`,
    );
  }
  try {
    await controlPlaneBinaries();
  } catch (e) {
    throw new Error(
      `stream-open needs kube-apiserver, etcd and kube-controller-manager: ${(e as Error).message} Or skip this scenario with --stream-opens 0.`,
    );
  }
}

// The local forward warns each time a connection closes at the first byte, which is the point here.
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet, enabled: () => false };

/** One fresh `ssh -N -R` into `sshd`, timed from its start to the first byte through the forward (ms). */
async function sshOpen(sshd: Sshd, targetPort: number): Promise<number> {
  const remotePort = await freePort();
  const t0 = Date.now();
  const r = startReverseSsh(sshd, remotePort, targetPort);
  try {
    await waitForward(r, sshd, () => receivesByte(remotePort), 20_000, 20);
    return Date.now() - t0;
  } finally {
    if (r.ssh.exitCode === null && r.ssh.signalCode === null) {
      r.ssh.kill("SIGKILL");
      await once(r.ssh, "exit");
    }
  }
}

export async function streamOpen(n: number, log: (s: string) => void): Promise<StreamOpenRun> {
  const ns = "bench";
  const device = "bench-device";
  const [s, d] = await Promise.allSettled([System.start({ replicas: 2, namespace: ns }), startSshd()]);
  const sys = s.status === "fulfilled" ? s.value : undefined;
  const sshd = d.status === "fulfilled" ? d.value : undefined;
  let admin: KubeClient | undefined;
  let edge: HubAgent | undefined;
  try {
    if (!sys || !sshd) throw (s.status === "rejected" ? s.reason : (d as PromiseRejectedResult).reason) as Error;
    admin = new KubeClient(sys.env.cluster.kubeConfig);
    edge = await startHubAgent(sys, { namespace: ns, device, allow: [`ssh=${sshd.address}`] });
    const opens: StreamOpen[] = [];
    const sshOpenMs: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        // Interleaved, so a slow moment of a shared machine hits both.
        opens.push(
          await timeStreamOpen(sys, admin, { namespace: ns, name: `open-${i}`, device, service: "ssh", log: quiet }),
        );
        sshOpenMs.push(await sshOpen(sshd, sshd.port));
      }
    } catch (e) {
      log(await sys.dump());
      log(`----- agent -----\n${edge.agent?.logs.slice(-15_000)}`);
      throw e;
    }
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const totalMs = opens.map((o) => o.totalMs);
    const withoutPodMs = opens.map((o) => o.withoutPodMs);
    const podStartMs = opens.map((o) => o.podStartMs);
    const [t, w, p, h] = [totalMs, withoutPodMs, podStartMs, sshOpenMs].map(sorted) as [
      number[],
      number[],
      number[],
      number[],
    ];
    return {
      opens: n,
      totalP50Ms: percentile(t, 50),
      totalP99Ms: percentile(t, 99),
      withoutPodP50Ms: percentile(w, 50),
      withoutPodP99Ms: percentile(w, 99),
      podStartP50Ms: percentile(p, 50),
      podStartP99Ms: percentile(p, 99),
      sshOpenP50Ms: percentile(h, 50),
      sshOpenP99Ms: percentile(h, 99),
      samples: { totalMs, withoutPodMs, podStartMs, sshOpenMs },
    };
  } finally {
    admin?.close();
    await edge?.stop();
    await sys?.stop();
    await sshd?.stop();
  }
}
