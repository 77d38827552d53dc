// ssh to a device through `kubectl devicestream ssh-proxy`, as a user would. Every command line
// and ssh's stderr go to `transcript`, for a failing test's report.
import { randomBytes } from "node:crypto";
import { commandLine, runCommand } from "./command.ts";
import type { Sshd } from "./sshd.ts";
import type { System } from "./system.ts";
import { waitFor } from "./wait.ts";

export interface PluginSshOptions {
  /** Getters: the system and sshd are made in a `before` hook, after this is set up. */
  sys: () => System;
  sshd: () => Sshd;
  namespace: string;
  transcript: (text: string) => void;
  /** Whose kubeconfig ssh-proxy runs with; the System's plugin user (a token) by default. */
  kubeconfig?: () => string;
}

export function pluginSsh(o: PluginSshOptions) {
  const ssh = (
    stream: string,
    command: string,
    options: Parameters<typeof runCommand>[2] = {},
    /** More flags for `kubectl devicestream ssh-proxy`. */
    proxyFlags: string[] = [],
  ) => {
    const sys = o.sys();
    const sshd = o.sshd();
    const proxy = commandLine("kubectl", [
      "devicestream",
      "ssh-proxy",
      `--kubeconfig=${o.kubeconfig?.() ?? sys.userKubeconfig}`,
      "-n",
      o.namespace,
      ...proxyFlags,
    ]);
    const args = [...sshd.sshArgs(), "-o", `ProxyCommand=${proxy} %h`, `${sshd.user}@${stream}`, command];
    o.transcript(`$ ${commandLine("ssh", args)}\n`);
    return runCommand("ssh", args, { timeoutMs: 60_000, ...options, env: { ...process.env, PATH: sys.path } }).then(
      (r) => {
        o.transcript(r.stderr);
        return r;
      },
    );
  };

  /** ssh works through the stream: retried while the agent (re)attaches, bounded. */
  const sshWorks = async (stream: string, timeoutMs = 30_000) => {
    const nonce = randomBytes(8).toString("hex");
    return waitFor(
      `ssh through ${stream}`,
      async () => {
        const r = await ssh(stream, `echo ${nonce}`, { timeoutMs: 20_000 });
        return r.code === 0 && r.stdout === `${nonce}\n`;
      },
      timeoutMs,
      250,
    );
  };

  return { ssh, sshWorks };
}
