// One SSH session for one browser terminal: ssh2's client over a tunnelled connection to the
// device's sshd, the host key checked against known_hosts first (an unknown key only after the
// person accepts its fingerprint; a changed or revoked one never), then a shell on a PTY.
import type { Duplex } from "node:stream";
import ssh2, { type Client, type ClientChannel } from "ssh2";
import { DeviceStreamsError } from "../../runtime/errors.ts";
import { addKnownHost, checkHostKey, fingerprint, keyType, knownTypes, readKnownHosts } from "./known-hosts.ts";
import type { TerminalSize } from "./messages.ts";
import type { SshAuth } from "./ssh-auth.ts";

/** ssh2's host key algorithms, best first; the types known_hosts has for the host go before them. */
const hostKeyAlgorithms = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
] as const;
type HostKeyAlgorithm = (typeof hostKeyAlgorithms)[number];

/**
 * As ssh does: ask first for the key types known_hosts holds for the host, so a device with several
 * host keys presents the one we can check rather than one we would have to ask about.
 */
export function hostKeyPreference(known: string[]): HostKeyAlgorithm[] {
  const algorithmsOf = (type: string): HostKeyAlgorithm[] =>
    type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : hostKeyAlgorithms.filter((a) => a === type);
  const first = known.flatMap(algorithmsOf);
  return [...new Set([...first, ...hostKeyAlgorithms])];
}

export interface UnknownHostKey {
  host: string;
  keyType: string;
  fingerprint: string;
  knownHosts: string;
}

export interface ShellRequest {
  /** The tunnelled connection to the device's sshd. */
  sock: Duplex;
  /** Why the tunnel ended, when it ended with an error (the relay's refusal, the device gone). */
  tunnelError?: () => Error | undefined;
  auth: SshAuth;
  /** The host's name in known_hosts, and the file. */
  hostKeyName: string;
  knownHostsFile: string;
  size: TerminalSize;
  /** Asked when known_hosts does not know the host: the person's answer. */
  confirmUnknownKey(key: UnknownHostKey): Promise<boolean>;
  /** The handshake's deadline, not counting the time the person takes to answer. */
  handshakeTimeoutMs?: number;
}

export interface Shell {
  client: Client;
  channel: ClientChannel;
  /** The key was unknown and the person accepted it: known_hosts has it now. */
  hostKeyAdded: boolean;
  resize(size: TerminalSize): void;
}

function sshError(err: Error & { level?: string }, r: ShellRequest): Error {
  if (err instanceof DeviceStreamsError) return err;
  if (err.level === "client-authentication") {
    return new DeviceStreamsError(
      "DS_SSH_AUTH_FAILED",
      `the device's sshd accepted no key for user "${r.auth.user}" (offered: ${r.auth.offered.join(", ")}); check --user and that user's authorized_keys on the device`,
    );
  }
  return new DeviceStreamsError(
    "DS_SSH_FAILED",
    `SSH failed before a shell opened: ${err.message}; check that the stream's service is the device's sshd`,
    { cause: err },
  );
}

export function openShell(r: ShellRequest): Promise<Shell> {
  const client = new ssh2.Client();
  const timeoutMs = r.handshakeTimeoutMs ?? 30_000;
  let hostKeyError: DeviceStreamsError | undefined;
  let hostKeyAdded = false;
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  return new Promise<Shell>((resolve, reject) => {
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
      client.end();
      r.sock.destroy();
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () => fail(new DeviceStreamsError("DS_SSH_FAILED", `no SSH handshake within ${timeoutMs / 1000}s`)),
        timeoutMs,
      );
    };
    const verifyHostKey = (blob: Buffer, verify: (ok: boolean) => void) => {
      const verdict = checkHostKey(readKnownHosts(r.knownHostsFile), r.hostKeyName, blob);
      const where = `${r.knownHostsFile}`;
      const seen = `${keyType(blob)} ${fingerprint(blob)}`;
      switch (verdict.status) {
        case "known":
          return verify(true);
        case "revoked":
          hostKeyError = new DeviceStreamsError(
            "DS_SSH_HOST_KEY_REVOKED",
            `the device "${r.hostKeyName}" presented host key ${seen}, which ${where}:${verdict.line} marks @revoked; refused`,
          );
          return verify(false);
        case "changed":
          hostKeyError = new DeviceStreamsError(
            "DS_SSH_HOST_KEY_CHANGED",
            `the host key of "${r.hostKeyName}" has changed: the device presented ${seen}, and ${where} (line ${verdict.lines.join(", ")}) holds another (${verdict.knownTypes.join(", ")}); someone may be in the middle, or the device was reinstalled: find out which before you remove the old key (ssh-keygen -R ${r.hostKeyName} -f ${where})`,
          );
          return verify(false);
        case "unknown": {
          // The person reads the fingerprint: no deadline while they do.
          clearTimeout(timer);
          const key = {
            host: r.hostKeyName,
            keyType: keyType(blob),
            fingerprint: fingerprint(blob),
            knownHosts: where,
          };
          r.confirmUnknownKey(key).then(
            (accept) => {
              if (settled) return;
              if (!accept) {
                hostKeyError = new DeviceStreamsError(
                  "DS_SSH_HOST_KEY_DECLINED",
                  `you declined the host key ${seen} of "${r.hostKeyName}"; nothing was added to ${where}`,
                );
                return verify(false);
              }
              addKnownHost(r.knownHostsFile, r.hostKeyName, blob);
              hostKeyAdded = true;
              arm();
              verify(true);
            },
            (err: Error) => fail(err),
          );
        }
      }
    };
    client.on("ready", () => {
      client.shell({ term: "xterm-256color", cols: r.size.cols, rows: r.size.rows, height: 0, width: 0 }, (err, ch) => {
        if (err) return fail(sshError(err, r));
        settled = true;
        clearTimeout(timer);
        resolve({
          client,
          channel: ch,
          hostKeyAdded,
          resize: (s) => ch.setWindow(s.rows, s.cols, 0, 0),
        });
      });
    });
    client.on("error", (err: Error) => fail(hostKeyError ?? r.tunnelError?.() ?? sshError(err, r)));
    client.on("close", () =>
      fail(
        hostKeyError ??
          r.tunnelError?.() ??
          new DeviceStreamsError("DS_SSH_FAILED", "the connection closed before a shell opened"),
      ),
    );
    arm();
    const known = knownTypes(readKnownHosts(r.knownHostsFile), r.hostKeyName);
    client.connect({
      sock: r.sock,
      username: r.auth.user,
      authHandler: r.auth.methods,
      hostVerifier: verifyHostKey,
      algorithms: { serverHostKey: hostKeyPreference(known) },
      // The deadline above replaces ssh2's, which would run on while the person reads the fingerprint.
      readyTimeout: 0,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
    });
  });
}
