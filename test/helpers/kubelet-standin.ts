// A test-only stand-in for the kubelet: nothing runs Pods on this machine, so it runs the relay
// Pods the operator creates as local processes, each on a loopback address of its own
// (127.0.X.Y), and reports them through the API exactly as a kubelet would: bound to a node,
// Running with a podIP, Ready once the readiness probe passes, restarted under restartPolicy,
// Failed at activeDeadlineSeconds, and on graceful deletion SIGTERM, SIGKILL at the grace period,
// then the final delete. The operator cannot tell it from a real node.
//
// It also serves the API server's port-forwards to those Pods (kubelet-portforward.ts).
// What it does not do: pull images (the container's `devicestreams` is this checkout's CLI),
// liveness probes, resource limits or security contexts.
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { KubeConfig } from "@kubernetes/client-node";
import { managedSelector } from "../../api/constants.ts";
import { nodeFlags } from "../../cli/node-flags.ts";
import { core, isNotFound, KubeClient, objectPath } from "../../kube/client.ts";
import type { KubeList, Pod, Secret } from "../../kube/types.ts";
import { type ManagedProcess, startProcess, tailFile } from "./child-process.ts";
import { type KubeletTls, registerNode, startPortForwardServer } from "./kubelet-portforward.ts";

const cli = fileURLToPath(new URL("../../cli/devicestreams.ts", import.meta.url));
const fieldManager = "kubelet-standin";
export const standInNodeName = "kubelet-standin";

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: { httpGet?: { path?: string; port: number | string }; periodSeconds?: number };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

interface PodSpec {
  nodeName?: string;
  restartPolicy?: "Always" | "OnFailure" | "Never";
  activeDeadlineSeconds?: number;
  terminationGracePeriodSeconds?: number;
  containers: Container[];
  volumes?: Array<{
    name: string;
    secret?: { secretName: string; defaultMode?: number; items?: Array<{ key: string; path: string; mode?: number }> };
  }>;
}

/** One Pod this stand-in runs. */
export interface RunningPod {
  namespace: string;
  name: string;
  uid: string;
  ip: string;
  /** When the stand-in first saw the Pod, and when its readiness probe first passed (ms epoch). */
  seenAt: number;
  readyAt?: number;
  restarts: number;
  logPath: string;
  /** The container's process now, if it runs. */
  pid?: number;
}

interface PodRun extends RunningPod {
  spec: PodSpec;
  dir: string;
  startTime: string;
  proc?: ManagedProcess;
  ready: boolean;
  phase: "Pending" | "Running" | "Succeeded" | "Failed";
  reason?: string;
  container: Record<string, unknown>;
  terminating?: Promise<void>;
  timers: Set<NodeJS.Timeout>;
  /** Status writes in order, one at a time. */
  writes: Promise<void>;
}

export interface KubeletStandIn {
  /** The Pods running now (or restarting), by `namespace/name`. */
  pods(): RunningPod[];
  pod(namespace: string, name: string): RunningPod | undefined;
  /** Every relay's log tail and what the stand-in itself did, for failure reports. */
  logs(): string;
  /** Kills every process it started (the Pods stay in the API, like a node that went away). */
  stop(): Promise<void>;
}

const rfc3339 = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

/** Loopback addresses differ per test process, so suites running side by side do not collide. */
let nextHost = 1;
const block = 20 + (process.pid % 200);

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

async function allocateIp(ports: number[]): Promise<string> {
  for (let i = 0; i < 60_000; i++) {
    const n = nextHost++;
    const ip = `127.${block}.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
    const free = await Promise.all(ports.map((p) => portFree(ip, p)));
    if (free.every(Boolean)) return ip;
  }
  throw new Error("kubelet stand-in: no free loopback address left");
}

export async function startKubeletStandIn(o: {
  kubeConfig: KubeConfig;
  dataDir: string;
  /** Serve the API server's port-forwards (the test cluster's `kubelet`), and register the Node. */
  tls?: KubeletTls;
}): Promise<KubeletStandIn> {
  const client = new KubeClient(o.kubeConfig);
  const runs = new Map<string, PodRun>(); // by uid
  const admitting = new Set<string>();
  const addresses = new Map<string, string>(); // namespace/name → IP
  const baseDir = join(o.dataDir, "kubelet-standin");
  mkdirSync(baseDir, { recursive: true });
  let journal = "";
  const note = (line: string) => {
    journal += `${new Date().toISOString()} ${line}\n`;
    if (journal.length > 200_000) journal = journal.slice(-100_000);
  };
  let stopped = false;
  let abort: AbortController | undefined;

  const podPath = (r: { namespace: string; name: string }) => objectPath(core.pods, r.namespace, r.name);

  function writeStatus(r: PodRun): void {
    const now = rfc3339();
    const cond = (type: string, ok: boolean) => ({ type, status: ok ? "True" : "False", lastTransitionTime: now });
    const running = r.phase === "Running";
    const status = {
      phase: r.phase,
      ...(r.reason ? { reason: r.reason } : {}),
      hostIP: "127.0.0.1",
      hostIPs: [{ ip: "127.0.0.1" }],
      podIP: r.ip,
      podIPs: [{ ip: r.ip }],
      startTime: r.startTime,
      conditions: [
        cond("PodScheduled", true),
        cond("Initialized", true),
        cond("ContainersReady", running && r.ready),
        cond("Ready", running && r.ready),
      ],
      containerStatuses: [{ ...r.container, ready: running && r.ready }],
    };
    const body = { apiVersion: "v1", kind: "Pod", metadata: { name: r.name, namespace: r.namespace }, status };
    r.writes = r.writes.then(async () => {
      if (stopped) return;
      try {
        await client.apply(`${podPath(r)}/status`, body, fieldManager);
      } catch (err) {
        if (!isNotFound(err)) note(`${r.namespace}/${r.name}: status write failed: ${(err as Error).message}`);
      }
    });
  }

  /** The Secret volumes' items as files, as the kubelet projects them. */
  async function materialise(r: PodRun, container: Container): Promise<Map<string, string>> {
    const mounts = new Map<string, string>();
    for (const m of container.volumeMounts ?? []) {
      const vol = r.spec.volumes?.find((v) => v.name === m.name);
      if (!vol?.secret) throw new Error(`volume ${m.name}: the stand-in mounts only Secret volumes`);
      const secret = await client.get<Secret>(objectPath(core.secrets, r.namespace, vol.secret.secretName));
      const data = secret.data ?? {};
      const dir = join(r.dir, "volumes", m.name);
      const items = vol.secret.items ?? Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
      for (const item of items) {
        if (data[item.key] === undefined) throw new Error(`Secret ${secret.metadata.name} has no key ${item.key}`);
        const file = join(dir, item.path);
        mkdirSync(dirname(file), { recursive: true });
        // Owner-readable at least: the process runs as this user, not as the Pod's runAsUser.
        const mode = (item.mode ?? vol.secret.defaultMode ?? 0o644) | 0o400;
        writeFileSync(file, Buffer.from(data[item.key]!, "base64"), { mode });
      }
      mounts.set(m.mountPath, dir);
    }
    return mounts;
  }

  /**
   * The container as a local process: with no `command`, the image's entrypoint (the devicestreams
   * CLI, with the Node.js flags the Dockerfile gives it) and the container's args; its own IP for
   * 0.0.0.0. A `command` would replace that entrypoint, which the real image cannot run.
   */
  function localCommand(r: PodRun, container: Container, mounts: Map<string, string>): string[] {
    if (container.command)
      throw new Error(`the stand-in runs only the image's entrypoint, not ${container.command[0]}`);
    const argv = container.args ?? [];
    const rewrite = (arg: string) => {
      let out = arg.replaceAll("0.0.0.0:", `${r.ip}:`);
      for (const [mountPath, dir] of mounts) out = out.replaceAll(mountPath, dir);
      return out;
    };
    return [...nodeFlags, cli, ...argv.map(rewrite)];
  }

  async function probe(r: PodRun, container: Container, proc: ManagedProcess): Promise<void> {
    const get = container.readinessProbe?.httpGet;
    const port =
      typeof get?.port === "number" ? get.port : container.ports?.find((p) => p.name === get?.port)?.containerPort;
    // A kubelet probes every periodSeconds; probing faster only makes readiness show sooner.
    const everyMs = Math.min((container.readinessProbe?.periodSeconds ?? 10) * 1000, 200);
    while (!stopped && r.proc === proc && proc.running() && !r.terminating) {
      let ok = !get; // no probe: ready once started
      if (get && port) {
        try {
          const res = await fetch(`http://${r.ip}:${port}${get.path ?? "/"}`, { signal: AbortSignal.timeout(1000) });
          await res.body?.cancel();
          ok = res.status >= 200 && res.status < 400;
        } catch {
          ok = false;
        }
      }
      if (ok !== r.ready && r.proc === proc && proc.running() && !r.terminating) {
        r.ready = ok;
        if (ok) r.readyAt ??= Date.now();
        note(`${r.namespace}/${r.name}: readiness ${ok ? "passed" : "failed"}`);
        writeStatus(r);
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }

  async function startContainer(r: PodRun): Promise<void> {
    const container = r.spec.containers[0]!;
    let argv: string[];
    try {
      argv = localCommand(r, container, await materialise(r, container));
    } catch (err) {
      // As a kubelet: the container cannot be created; say why in its waiting state.
      note(`${r.namespace}/${r.name}: cannot start: ${(err as Error).message}`);
      r.container = {
        ...r.container,
        ready: false,
        state: { waiting: { reason: "CreateContainerConfigError", message: (err as Error).message } },
      };
      writeStatus(r);
      return;
    }
    const proc = startProcess(`relay ${r.namespace}/${r.name}`, process.execPath, argv, r.logPath);
    r.proc = proc;
    r.ready = false;
    r.phase = "Running";
    const startedAt = rfc3339();
    r.container = {
      name: container.name,
      image: container.image ?? "",
      imageID: "",
      containerID: `standin://${proc.child.pid}`,
      ready: false,
      started: true,
      restartCount: r.restarts,
      state: { running: { startedAt } },
      ...(r.container.lastState ? { lastState: r.container.lastState } : {}),
    };
    note(`${r.namespace}/${r.name}: started pid ${proc.child.pid} on ${r.ip}: ${argv.slice(1).join(" ")}`);
    writeStatus(r);
    void probe(r, container, proc);
    void proc.exited.then((code) => onExit(r, proc, code, startedAt));
  }

  function onExit(r: PodRun, proc: ManagedProcess, code: number | null, startedAt: string): void {
    if (r.proc !== proc || stopped) return;
    const exitCode = code ?? 137;
    const terminated = {
      exitCode,
      reason: exitCode === 0 ? "Completed" : "Error",
      startedAt,
      finishedAt: rfc3339(),
    };
    note(`${r.namespace}/${r.name}: process exited with ${code ?? "a signal"}`);
    r.ready = false;
    if (r.terminating) return;
    const policy = r.spec.restartPolicy ?? "Always";
    const restart = policy === "Always" || (policy === "OnFailure" && exitCode !== 0);
    if (!restart) {
      r.phase = exitCode === 0 ? "Succeeded" : "Failed";
      r.container = { ...r.container, ready: false, started: false, state: { terminated } };
      writeStatus(r);
      return;
    }
    // CrashLoopBackOff, with a short back-off: the kubelet's starts at 10 s, too slow for tests.
    const delayMs = Math.min(250 * 2 ** r.restarts, 5000);
    r.restarts++;
    r.container = {
      ...r.container,
      ready: false,
      started: false,
      restartCount: r.restarts,
      state: { waiting: { reason: "CrashLoopBackOff", message: `back-off restarting failed container` } },
      lastState: { terminated },
    };
    writeStatus(r);
    const t = setTimeout(() => {
      r.timers.delete(t);
      if (!r.terminating && !stopped) void startContainer(r);
    }, delayMs);
    r.timers.add(t);
  }

  /** SIGTERM, SIGKILL after the grace period, as the kubelet does. */
  function terminate(r: PodRun, graceSeconds: number, why: string): Promise<void> {
    r.terminating ??= (async () => {
      note(`${r.namespace}/${r.name}: stopping (${why}), grace ${graceSeconds}s`);
      for (const t of r.timers) clearTimeout(t);
      r.timers.clear();
      r.ready = false;
      await r.proc?.stop(graceSeconds * 1000);
    })();
    return r.terminating;
  }

  async function admit(pod: Pod): Promise<void> {
    const uid = pod.metadata.uid!;
    const spec = pod.spec as unknown as PodSpec;
    if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return;
    // Bind it to our node first, as the scheduler would; deleting a bound Pod is then graceful.
    if (!spec.nodeName) {
      const binding = {
        apiVersion: "v1",
        kind: "Binding",
        metadata: { name: pod.metadata.name },
        target: { apiVersion: "v1", kind: "Node", name: standInNodeName },
      };
      try {
        await client.create(
          `${podPath({ namespace: pod.metadata.namespace!, name: pod.metadata.name! })}/binding`,
          binding,
          fieldManager,
        );
      } catch (err) {
        if (isNotFound(err)) return;
        note(`${pod.metadata.namespace}/${pod.metadata.name}: binding failed: ${(err as Error).message}`);
      }
    }
    if (runs.has(uid) || stopped) return;
    const container = spec.containers[0]!;
    const ports = (container.ports ?? []).map((p) => p.containerPort);
    // A Pod made again under the same name gets the same address: that stands in for the
    // headless Service's DNS name, which agents and clients dial and which follows the new Pod.
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const ip = addresses.get(key) ?? (await allocateIp(ports));
    addresses.set(key, ip);
    if (runs.has(uid) || stopped) return;
    const dir = join(baseDir, uid);
    mkdirSync(join(o.dataDir, "logs"), { recursive: true });
    const r: PodRun = {
      namespace: pod.metadata.namespace!,
      name: pod.metadata.name!,
      uid,
      ip,
      seenAt: Date.now(),
      restarts: 0,
      logPath: join(o.dataDir, "logs", `pod-${pod.metadata.namespace}-${pod.metadata.name}-${uid.slice(0, 8)}.log`),
      spec,
      dir,
      startTime: rfc3339(),
      ready: false,
      phase: "Pending",
      container: {
        name: container.name,
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: "ContainerCreating" } },
      },
      timers: new Set(),
      writes: Promise.resolve(),
    };
    runs.set(uid, r);
    note(`${r.namespace}/${r.name}: admitted on ${ip}`);
    if (spec.activeDeadlineSeconds) {
      const t = setTimeout(() => {
        r.timers.delete(t);
        void terminate(r, spec.terminationGracePeriodSeconds ?? 30, "activeDeadlineSeconds").then(() => {
          r.phase = "Failed";
          r.reason = "DeadlineExceeded";
          r.container = { ...r.container, ready: false, state: { terminated: { exitCode: 137, reason: "Error" } } };
          writeStatus(r);
        });
      }, spec.activeDeadlineSeconds * 1000);
      r.timers.add(t);
    }
    await startContainer(r);
  }

  async function onDeleting(pod: Pod): Promise<void> {
    const r = runs.get(pod.metadata.uid!);
    const meta = pod.metadata as Pod["metadata"] & { deletionGracePeriodSeconds?: number };
    const grace = meta.deletionGracePeriodSeconds ?? 30;
    if (r) await terminate(r, grace, "Pod deleted");
    if (stopped) return;
    // The kubelet's last word: the containers are gone, the API server may now remove the Pod.
    try {
      await client.delete(objectPath(core.pods, pod.metadata.namespace!, pod.metadata.name!), {
        gracePeriodSeconds: 0,
        uid: pod.metadata.uid,
      });
    } catch (err) {
      if (!isNotFound(err))
        note(`${pod.metadata.namespace}/${pod.metadata.name}: final delete failed: ${(err as Error).message}`);
    }
  }

  function onEvent(type: string, pod: Pod): void {
    const uid = pod.metadata.uid!;
    if (type === "DELETED") {
      const r = runs.get(uid);
      if (r) void terminate(r, 0, "Pod removed from the API").then(() => runs.delete(uid));
      return;
    }
    if (type !== "ADDED" && type !== "MODIFIED") return;
    if (pod.metadata.deletionTimestamp) {
      void onDeleting(pod);
      return;
    }
    if (!runs.has(uid) && !admitting.has(uid)) {
      admitting.add(uid);
      admit(pod)
        .catch((err) => note(`${pod.metadata.namespace}/${pod.metadata.name}: ${(err as Error).message}`))
        .finally(() => admitting.delete(uid));
    }
  }

  // List, then watch from the list's resourceVersion; any end of the watch relists.
  const loop = async () => {
    while (!stopped) {
      try {
        const list = await client.request<KubeList<Pod>>("GET", "/api/v1/pods", {
          query: { labelSelector: managedSelector },
        });
        const live = new Set<string>();
        for (const pod of list.items) {
          live.add(pod.metadata.uid!);
          onEvent("MODIFIED", pod);
        }
        for (const [uid, r] of runs) {
          if (!live.has(uid)) void terminate(r, 0, "Pod gone from the API").then(() => runs.delete(uid));
        }
        await new Promise<void>((resolve) => {
          void client
            .watch(
              "/api/v1/pods",
              {
                labelSelector: managedSelector,
                resourceVersion: list.metadata?.resourceVersion,
                allowWatchBookmarks: true,
              },
              (type, obj) => onEvent(type, obj as Pod),
              () => resolve(),
            )
            .then(
              (a) => {
                abort = a;
                if (stopped) a.abort();
              },
              () => resolve(),
            );
        });
      } catch (err) {
        note(`watch: ${(err as Error).message}`);
      }
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  void loop();

  const running = (namespace: string, name: string) =>
    [...runs.values()].find((x) => x.namespace === namespace && x.name === name && !x.terminating);
  const portForward = o.tls
    ? await startPortForwardServer(o.tls, (ns, name) => running(ns, name)?.ip, note)
    : undefined;
  if (portForward) await registerNode(client, standInNodeName, portForward.port, fieldManager);

  return {
    pods: () => [...runs.values()].map(publicView),
    pod: (namespace, name) => {
      const r = running(namespace, name);
      return r && publicView(r);
    },
    logs: () => {
      const parts = [`----- kubelet stand-in -----\n${journal}`];
      for (const r of runs.values())
        parts.push(`----- relay Pod ${r.namespace}/${r.name} (${r.ip}) -----\n${tailFile(r.logPath, 60)}`);
      return parts.join("\n");
    },
    stop: async () => {
      stopped = true;
      abort?.abort();
      await portForward?.close();
      await Promise.all([...runs.values()].map((r) => terminate(r, 0, "stand-in stopped")));
      runs.clear();
      client.close();
    },
  };
}

function publicView(r: PodRun): RunningPod {
  const { namespace, name, uid, ip, seenAt, readyAt, restarts, logPath } = r;
  const pid = r.proc?.running() ? r.proc.child.pid : undefined;
  return { namespace, name, uid, ip, seenAt, readyAt, restarts, logPath, pid };
}
