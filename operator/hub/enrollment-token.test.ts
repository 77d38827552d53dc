import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { checkEnrollmentToken, destinationToken, makeEnrollmentToken, tokenKey } from "./enrollment-token.ts";

describe("enrolment tokens", () => {
  const key = tokenKey("-----BEGIN PRIVATE KEY-----\nfake\n", "hub tokens");
  const now = 1_800_000_000_000;

  it("accepts the token made for this Device's UID until it expires", () => {
    const token = makeEnrollmentToken(key, "uid-1", now + 60_000);
    assert.deepEqual(checkEnrollmentToken(key, "uid-1", token, now), { ok: true, expiresAtMs: now + 60_000 });
    assert.deepEqual(checkEnrollmentToken(key, "uid-1", `${token}\n`, now).ok, true, "a trailing newline from a file");
  });

  it("refuses an expired token with DS_ENROLLMENT_TOKEN_EXPIRED", () => {
    const token = makeEnrollmentToken(key, "uid-1", now);
    const r = checkEnrollmentToken(key, "uid-1", token, now);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, "DS_ENROLLMENT_TOKEN_EXPIRED");
  });

  it("refuses another Device's token, a re-created Device's, a forged expiry, another CA's and garbage", () => {
    const token = makeEnrollmentToken(key, "uid-1", now + 60_000);
    const otherKey = tokenKey("another CA", "hub tokens");
    const forged = token.replace(String(now + 60_000), String(now + 10 * 60_000));
    for (const [uid, t, k] of [
      ["uid-2", token, key],
      ["uid-1", forged, key],
      ["uid-1", token, otherKey],
      ["uid-1", "dse1.abc.def", key],
      ["uid-1", "", key],
    ] as const) {
      const r = checkEnrollmentToken(k, uid, t, now);
      assert.equal(!r.ok && r.code, "DS_ENROLLMENT_TOKEN_INVALID", `${uid} ${t}`);
    }
  });

  it("refuses a token of the earlier format (kept where plugin users could read it), relabelled or not", () => {
    const expires = now + 60_000;
    const mac = (what: string) => createHmac("sha256", key).update(`${what}\0${expires}`).digest("base64url");
    for (const t of [
      `dse1.${expires}.${mac("enroll\0uid-1")}`,
      `dse2.${expires}.${mac("enroll\0uid-1")}`,
      `dse2.${expires}.${mac(`reenroll\0uid-1\0${"a".repeat(64)}`)}`,
    ]) {
      const r = checkEnrollmentToken(key, "uid-1", t, now);
      assert.equal(!r.ok && r.code, "DS_ENROLLMENT_TOKEN_INVALID", t);
    }
    assert.match(makeEnrollmentToken(key, "uid-1", expires), /^dse2\./);
  });

  it("binds a re-enrolment token to the key it replaces, apart from first-enrolment tokens", () => {
    const first = makeEnrollmentToken(key, "uid-1", now + 60_000);
    const again = makeEnrollmentToken(key, "uid-1", now + 60_000, "a".repeat(64));
    assert.equal(checkEnrollmentToken(key, "uid-1", again, now, "a".repeat(64)).ok, true);
    for (const [t, replaces] of [
      [first, "a".repeat(64)], // a first token, still valid, cannot re-enrol
      [again, undefined], // nor the other way round
      [again, "b".repeat(64)], // once key a is replaced by b, the token is used up
    ] as const) {
      const r = checkEnrollmentToken(key, "uid-1", t, now, replaces);
      assert.equal(!r.ok && r.code, "DS_ENROLLMENT_TOKEN_INVALID", `${t} for ${replaces}`);
    }
  });

  it("derives a stream's destination token the same way on every replica, distinct per stream", () => {
    const a = destinationToken(key, "stream-uid-a");
    assert.equal(a, destinationToken(tokenKey("-----BEGIN PRIVATE KEY-----\nfake\n", "hub tokens"), "stream-uid-a"));
    assert.notEqual(a, destinationToken(key, "stream-uid-b"));
    assert.match(a, /^dst_[A-Za-z0-9_-]{43}$/);
  });
});
