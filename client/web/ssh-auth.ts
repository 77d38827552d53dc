// Which keys the browser terminal offers the device's sshd, as ssh would: the `--identity` file,
// then the agent at SSH_AUTH_SOCK, then (without --identity) the default ~/.ssh/id_* keys. Private
// keys stay in this process: the browser never sees one. Passphrase-protected keys are used
// through the agent, which already knows how to ask for a passphrase.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentAuthMethod, ParsedKey, PublicKeyAuthMethod } from "ssh2";
import ssh2 from "ssh2";

type AuthMethod = PublicKeyAuthMethod | AgentAuthMethod;

import { DeviceStreamsError } from "../../runtime/errors.ts";

export const defaultKeyNames = ["id_ed25519", "id_ecdsa", "id_rsa"];

export interface SshAuth {
  user: string;
  methods: AuthMethod[];
  /** What is offered, for the message when sshd accepts none of it. */
  offered: string[];
  /** Default keys passed over, and why (passphrase, unreadable): said once at start. */
  skipped: string[];
}

function readKey(file: string): ParsedKey | Error {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    return err as Error;
  }
  const key = ssh2.utils.parseKey(data);
  return key instanceof Error ? key : Array.isArray(key) ? (key[0] as ParsedKey) : key;
}

const encrypted = (err: Error) => /encrypted|passphrase/i.test(err.message);

export function sshAuth(o: { user: string; identity?: string; agentSocket?: string; sshDir: string }): SshAuth {
  const methods: AuthMethod[] = [];
  const offered: string[] = [];
  const skipped: string[] = [];
  const publicKey = (file: string, key: ParsedKey) => {
    methods.push({ type: "publickey", username: o.user, key } satisfies PublicKeyAuthMethod);
    offered.push(`${file} (${key.type})`);
  };
  if (o.identity) {
    const key = readKey(o.identity);
    if (key instanceof Error) {
      const remedy = encrypted(key)
        ? `it is protected by a passphrase: add it to your agent (\`ssh-add ${o.identity}\`) and run again with SSH_AUTH_SOCK set`
        : "pass a readable OpenSSH or PEM private key";
      throw new DeviceStreamsError("DS_SSH_NO_IDENTITY", `--identity ${o.identity}: ${key.message}; ${remedy}`);
    }
    publicKey(o.identity, key);
  }
  if (o.agentSocket) {
    methods.push({ type: "agent", username: o.user, agent: o.agentSocket } satisfies AgentAuthMethod);
    offered.push(`the agent at SSH_AUTH_SOCK=${o.agentSocket}`);
  }
  if (!o.identity) {
    for (const name of defaultKeyNames) {
      const file = join(o.sshDir, name);
      if (!existsSync(file)) continue;
      const key = readKey(file);
      if (key instanceof Error) {
        skipped.push(
          `${file}: ${encrypted(key) ? "has a passphrase (add it to your agent with ssh-add)" : key.message}`,
        );
      } else publicKey(file, key);
    }
  }
  if (!methods.length) {
    const why = skipped.length ? ` (${skipped.join("; ")})` : "";
    throw new DeviceStreamsError(
      "DS_SSH_NO_IDENTITY",
      `no SSH key to offer: no --identity, no agent (SSH_AUTH_SOCK is unset), no usable key in ${o.sshDir}${why}; pass --identity FILE or start an agent and ssh-add your key`,
    );
  }
  return { user: o.user, methods, offered, skipped };
}
