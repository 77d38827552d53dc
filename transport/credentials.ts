// Per-stream, per-role bearer credentials. The relay stores only SHA-256 digests; the raw tokens
// go to the one party of each role.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export type Role = "source" | "destination";

const prefixes: Record<Role, string> = { source: "src_", destination: "dst_" };

export function newToken(role: Role): string {
  return prefixes[role] + randomBytes(32).toString("base64url");
}

export function tokenSha256(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Constant-time comparison of a presented token with a stored digest. */
export function tokenMatches(token: string, sha256Hex: string): boolean {
  const want = Buffer.from(sha256Hex, "hex");
  const got = createHash("sha256").update(token).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** The role a token was made for, from its prefix; undefined for a token of no known shape. */
export function tokenRole(token: string): Role | undefined {
  if (token.startsWith(prefixes.source)) return "source";
  if (token.startsWith(prefixes.destination)) return "destination";
  return undefined;
}
