// One-time enrolment tokens, stateless for the hub: the token carries its expiry and an HMAC over
// (Device UID, expiry) under a key derived from the operator CA's private key. Every replica can
// check it without reading Secrets (the operator may only create them), and a token made for one
// Device (UID) is worthless for any other. Single use comes from the Device: once it has an
// identity, enrolment is refused. A re-enrolment token (spec.identity.reenroll) is also bound to
// the key it replaces, so it is worthless once that key is replaced, and a first-enrolment token
// still within its lifetime cannot re-enrol anything.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { ErrorCode } from "../../runtime/error-codes.ts";

// dse2: tokens kept in the operator's namespace. dse1 tokens were kept next to the Device, where
// every plugin user may read Secrets; their MAC covered other input, so none of them (relabelled
// or not) checks out any more.
const prefix = "dse2";

export function tokenKey(caKeyPem: string, purpose: string): Buffer {
  return createHash("sha256").update(`devicestreams ${purpose}\0`).update(caKeyPem).digest();
}

function mac(key: Buffer, uid: string, expiresAtMs: number, replaces: string | undefined): string {
  const what = replaces === undefined ? `enroll2\0${uid}` : `reenroll2\0${uid}\0${replaces}`;
  return createHmac("sha256", key).update(`${what}\0${expiresAtMs}`).digest("base64url");
}

/** `replaces`: the SHA-256 of the enrolled key a re-enrolment token may replace. */
export function makeEnrollmentToken(key: Buffer, uid: string, expiresAtMs: number, replaces?: string): string {
  return `${prefix}.${expiresAtMs}.${mac(key, uid, expiresAtMs, replaces)}`;
}

export type TokenCheck = { ok: true; expiresAtMs: number } | { ok: false; code: ErrorCode; message: string };

export function checkEnrollmentToken(
  key: Buffer,
  uid: string,
  token: string,
  now = Date.now(),
  replaces?: string,
): TokenCheck {
  const parts = token.trim().split(".");
  const invalid: TokenCheck = {
    ok: false as const,
    code: "DS_ENROLLMENT_TOKEN_INVALID",
    message:
      "the enrolment token is not this Device's (wrong device, the Device was deleted and created again, or the " +
      "token is from an earlier enrolment); an administrator reads the current token from the Secret that the Device's status.enrollment names",
  };
  if (parts.length !== 3 || parts[0] !== prefix || !/^\d+$/.test(parts[1]!)) return invalid;
  const expiresAtMs = Number(parts[1]);
  const want = Buffer.from(mac(key, uid, expiresAtMs, replaces));
  const got = Buffer.from(parts[2]!);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return invalid;
  if (now >= expiresAtMs) {
    return {
      ok: false,
      code: "DS_ENROLLMENT_TOKEN_EXPIRED",
      message: `the enrolment token expired at ${new Date(expiresAtMs).toISOString()}; the operator writes a new one into the Secret that the Device's status.enrollment names (delete that Secret to get one at once)`,
    };
  }
  return { ok: true, expiresAtMs };
}

/** The destination token of a stream, derived so that any hub replica can hand it to the device. */
export function destinationToken(key: Buffer, streamUid: string): string {
  return `dst_${createHmac("sha256", key).update(`destination\0${streamUid}`).digest("base64url")}`;
}
