// The real one-node cluster of scripts/node-cluster/ for this tier: started once per run (minutes:
// it builds what it lacks), stopped when the run ends. A cluster that is already up (a developer's
// `up.sh`) is used as it is and left running.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { runChecked, runCommand } from "../helpers/command.ts";

export const root = join(import.meta.dirname, "../..");
const scripts = join(root, "scripts/node-cluster");
export const nodeDir = process.env.DEVICESTREAMS_NODE_DIR ?? "/var/lib/devicestreams-node";
export const kubeconfigPath = join(nodeDir, "admin.kubeconfig");
/** Where scripts/build-image.sh puts the images by default. */
export const imageDir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "devicestreams/image");
export const binDir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "devicestreams/k8s-v1.34.4");
export const nodeName = "dsnode";
/** The image tag the charts use by default: their appVersion, the package's version. */
export const imageRef = "ghcr.io/devicestreams/devicestreams:0.1.0";

let up: Promise<KubeConfig> | undefined;
let ours = false;

/** The node's admin KubeConfig, starting the node first if it is not up. */
export function nodeCluster(): Promise<KubeConfig> {
  up ??= (async () => {
    const running = (await runCommand("ip", ["netns", "pids", "devicestreams-node"])).code === 0;
    if (!running || !existsSync(kubeconfigPath)) {
      ours = true;
      await runChecked("bash", [join(scripts, "up.sh")], { timeoutMs: 1_800_000 });
    }
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return kc;
  })();
  return up;
}

/** Stops the node if this run started it (mocha's root afterAll, see hooks.ts). */
export async function stopNodeCluster(): Promise<void> {
  if (!ours || process.env.DEVICESTREAMS_KEEP_NODE) return;
  await runChecked("bash", [join(scripts, "down.sh")], { timeoutMs: 300_000 });
}

/** kubectl against the node, failing with its stderr on a non-zero exit. */
export async function kubectl(args: string[], input?: string, timeoutMs = 120_000): Promise<string> {
  const r = await runChecked(join(binDir, "kubectl"), ["--kubeconfig", kubeconfigPath, ...args], {
    input,
    timeoutMs,
  });
  return r.stdout;
}

export async function helm(args: string[], timeoutMs = 300_000): Promise<string> {
  const r = await runChecked(join(binDir, "helm"), ["--kubeconfig", kubeconfigPath, ...args], { timeoutMs });
  return r.stdout;
}
