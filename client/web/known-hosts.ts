// known_hosts as OpenSSH reads it, for the browser terminal's host key check: plain and hashed
// (`|1|salt|hash`) names, patterns with `*`, `?` and `!` negation, `[host]:port`, `@revoked`.
// `@cert-authority` lines are skipped: the terminal checks plain host keys, not certificates.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";

export interface KnownHost {
  /** 1-based, for messages that point at the line to remove. */
  line: number;
  marker?: "revoked" | "cert-authority";
  /** The host field as written: a comma list of patterns, or one hashed name. */
  hosts: string;
  type: string;
  blob: Buffer;
}

export type HostKeyVerdict =
  | { status: "known"; line: number }
  | { status: "unknown" }
  /** The host has keys in the file and this is none of them: refused, never accepted. */
  | { status: "changed"; lines: number[]; knownTypes: string[] }
  | { status: "revoked"; line: number };

/** The key's type, read from the blob itself (its first SSH string). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) throw new Error("host key blob too short");
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || 4 + n > blob.length) throw new Error("host key blob has no key type");
  return blob.subarray(4, 4 + n).toString("latin1");
}

/** As `ssh-keygen -l` and ssh's prompt write it: SHA256 of the blob, base64 without padding. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

export function parseKnownHosts(text: string): KnownHost[] {
  const out: KnownHost[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fields = lines[i]!.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith("#")) continue;
    let marker: KnownHost["marker"];
    if (fields[0].startsWith("@")) {
      const m = fields.shift()!;
      if (m !== "@revoked" && m !== "@cert-authority") continue;
      marker = m.slice(1) as KnownHost["marker"];
    }
    const [hosts, type, key] = fields;
    if (!hosts || !type || !key || !/^[A-Za-z0-9+/]+={0,2}$/.test(key)) continue;
    const blob = Buffer.from(key, "base64");
    out.push({ line: i + 1, ...(marker ? { marker } : {}), hosts, type, blob });
  }
  return out;
}

/** OpenSSH's match_pattern: `*` any run, `?` any one character. */
function globMatch(text: string, pattern: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
  );
  return re.test(text);
}

function hashedMatch(field: string, name: string): boolean {
  const [, magic, salt, hash] = field.split("|");
  if (magic !== "1" || !salt || !hash) return false;
  const want = Buffer.from(hash, "base64");
  const got = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/**
 * Whether a line's host field names `name` (already in known_hosts form: `host`, or `[host]:port`
 * for a port other than 22). A matching negated pattern excludes the line whatever else matches.
 */
export function hostMatches(field: string, name: string): boolean {
  const host = name.toLowerCase();
  if (field.startsWith("|")) return hashedMatch(field, host);
  let matched = false;
  for (const raw of field.split(",")) {
    const negated = raw.startsWith("!");
    const pattern = (negated ? raw.slice(1) : raw).toLowerCase();
    if (!globMatch(host, pattern)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/** The host key types known for `name`, most preferred first: what to ask the server for. */
export function knownTypes(entries: KnownHost[], name: string): string[] {
  const types = entries.filter((e) => !e.marker && hostMatches(e.hosts, name)).map((e) => e.type);
  return [...new Set(types)];
}

export function checkHostKey(entries: KnownHost[], name: string, blob: Buffer): HostKeyVerdict {
  const mine = entries.filter((e) => hostMatches(e.hosts, name));
  // As ssh: a revoked key is refused even when another line lists it as good.
  const revoked = entries.find((e) => e.marker === "revoked" && e.blob.equals(blob));
  if (revoked) return { status: "revoked", line: revoked.line };
  const plain = mine.filter((e) => !e.marker);
  const same = plain.find((e) => e.blob.equals(blob));
  if (same) return { status: "known", line: same.line };
  if (!plain.length) return { status: "unknown" };
  return { status: "changed", lines: plain.map((e) => e.line), knownTypes: [...new Set(plain.map((e) => e.type))] };
}

export function readKnownHosts(file: string): KnownHost[] {
  if (!existsSync(file)) return [];
  return parseKnownHosts(readFileSync(file, "utf8"));
}

/** The line ssh itself would add; the name stays readable (ssh-keygen -H hashes a file later). */
export function knownHostsLine(name: string, blob: Buffer): string {
  return `${name} ${keyType(blob)} ${blob.toString("base64")}`;
}

/** Appends the host's key, making ~/.ssh (0700) and the file (0600) as ssh does when missing. */
export function addKnownHost(file: string, name: string, blob: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let prefix = "";
  if (existsSync(file)) {
    const text = readFileSync(file, "utf8");
    if (text && !text.endsWith("\n")) prefix = "\n";
  }
  appendFileSync(file, `${prefix}${knownHostsLine(name, blob)}\n`, { mode: 0o600 });
}
