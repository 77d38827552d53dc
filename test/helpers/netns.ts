// A network namespace of the test's own with nothing but loopback: a process started in it reaches
// only what the test bridges in. Each bridge is a TCP port on the namespace's 127.0.0.1 joined by
// a Unix socket (socat on both ends) to a TCP address of the host, so no address, route or link
// exists outside the namespace, and nothing it sends can go anywhere else. Needs root.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ManagedProcess, startProcess } from "./child-process.ts";
import { runCommand } from "./command.ts";
import { waitFor } from "./wait.ts";

export const netnsAvailable = process.getuid?.() === 0;

export interface IsolatedNamespace {
  name: string;
  /** The prefix that runs a command inside. */
  wrap: string[];
  /** Makes 127.0.0.1:`port` inside lead to `target` (host:port) outside. */
  bridge(port: number, target: string): Promise<void>;
  /** Runs a shell command inside; resolves with its exit code. */
  run(script: string): Promise<number | null>;
  remove(): Promise<void>;
}

let count = 0;

/** Namespaces of test processes that died before removing theirs (a killed run). */
async function removeStale(): Promise<void> {
  const list = await runCommand("ip", ["netns", "list"], { timeoutMs: 10_000 });
  for (const m of list.stdout.matchAll(/^(ds-[a-z]+-(\d+)-\d+)/gm)) {
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      await runCommand("ip", ["netns", "delete", m[1]!], { timeoutMs: 10_000 });
    }
  }
}

export async function isolatedNamespace(label: string): Promise<IsolatedNamespace> {
  await removeStale();
  const name = `ds-${label}-${process.pid}-${count++}`;
  const dir = mkdtempSync(join(tmpdir(), `${name}-`));
  const procs: ManagedProcess[] = [];
  const must = async (cmd: string, args: string[]) => {
    const r = await runCommand(cmd, args, { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  };
  await must("ip", ["netns", "add", name]);
  const wrap = ["ip", "netns", "exec", name];
  await must("ip", ["netns", "exec", name, "ip", "link", "set", "lo", "up"]);
  const ns: IsolatedNamespace = {
    name,
    wrap,
    async bridge(port, target) {
      const sock = join(dir, `bridge-${port}.sock`);
      const outside = startProcess(
        `bridge ${port} outside`,
        "socat",
        [`UNIX-LISTEN:${sock},fork,mode=600`, `TCP:${target}`],
        join(dir, `bridge-${port}-outside.log`),
      );
      procs.push(outside);
      await waitFor(`bridge socket ${sock}`, async () => (await runCommand("test", ["-S", sock])).code === 0, 10_000);
      const inside = startProcess(
        `bridge ${port} inside`,
        wrap[0]!,
        [...wrap.slice(1), "socat", `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${sock}`],
        join(dir, `bridge-${port}-inside.log`),
      );
      procs.push(inside);
      await waitFor(
        `127.0.0.1:${port} in ${name}`,
        async () => (await ns.run(`exec 3<>/dev/tcp/127.0.0.1/${port}`)) === 0,
        10_000,
      );
    },
    async run(script) {
      return (await runCommand("ip", ["netns", "exec", name, "bash", "-c", script], { timeoutMs: 10_000 })).code;
    },
    async remove() {
      for (const p of procs.reverse()) await p.stop();
      await runCommand("ip", ["netns", "delete", name], { timeoutMs: 10_000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return ns;
}
