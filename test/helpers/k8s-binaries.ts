// Finds the control-plane binaries: the folder named by KUBEBUILDER_ASSETS (envtest's convention),
// else whatever scripts/k8s-test-binaries.sh builds and caches (slow the first time, instant after).
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";

export interface ControlPlaneBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  /** Absent when KUBEBUILDER_ASSETS points at a folder without it. */
  kubeControllerManager?: string;
}

const script = join(import.meta.dirname, "../../scripts/k8s-test-binaries.sh");
const howTo =
  "Set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd (and kube-controller-manager), " +
  `or build them once with \`bash ${script}\` (needs Go >= 1.24 and the Go module proxy). See docs/testing.md.`;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function inFolder(dir: string): ControlPlaneBinaries | undefined {
  const bins: ControlPlaneBinaries = {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
  };
  if (!executable(bins.etcd) || !executable(bins.kubeApiserver)) return undefined;
  const kcm = join(dir, "kube-controller-manager");
  if (executable(kcm)) bins.kubeControllerManager = kcm;
  return bins;
}

function runScript(): Promise<string> {
  return new Promise((resolve, reject) => {
    // stderr passes through: a cold build takes many minutes and says so.
    const child = spawn("bash", [script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      const dir = out.trimEnd().split("\n").at(-1) ?? "";
      if (code === 0 && dir) resolve(dir);
      else reject(new Error(`${script} exited with ${code}`));
    });
  });
}

let found: Promise<ControlPlaneBinaries> | undefined;

export function controlPlaneBinaries(): Promise<ControlPlaneBinaries> {
  found ??= (async () => {
    const assets = process.env.KUBEBUILDER_ASSETS;
    if (assets) {
      const bins = inFolder(assets);
      if (bins) return bins;
      throw new Error(`KUBEBUILDER_ASSETS=${assets} lacks an executable kube-apiserver or etcd. ${howTo}`);
    }
    let dir: string;
    try {
      dir = await runScript();
    } catch (err) {
      throw new Error(`No control-plane binaries: ${(err as Error).message}. ${howTo}`);
    }
    const bins = inFolder(dir);
    if (!bins) throw new Error(`${script} printed ${dir}, which lacks kube-apiserver or etcd. ${howTo}`);
    return bins;
  })();
  // A failure is not cached, so a later caller can try again.
  found.catch(() => {
    found = undefined;
  });
  return found;
}
