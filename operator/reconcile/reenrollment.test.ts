import assert from "node:assert/strict";
import type { Device, DeviceIdentity } from "../../api/v1alpha1.ts";
import { currentTokenExpiry, enrollmentTokenWanted, reenrollmentRequester } from "./reenrollment.ts";

const now = 1_800_000_000_000;
const ttl = 24 * 3600_000;
const keyA = "a".repeat(64);
const keyB = "b".repeat(64);

function device(identity?: DeviceIdentity, annotations?: Record<string, string>): Device {
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "Device",
    metadata: { name: "edge", namespace: "ns", uid: "u", annotations },
    spec: identity ? { identity } : {},
  };
}
const token = (expiresAtMs: number, replaces?: string) => ({
  "devicestreams.io/enrollment-expires-at": new Date(expiresAtMs).toISOString(),
  ...(replaces ? { "devicestreams.io/enrollment-replaces": replaces } : {}),
});

describe("when the leader writes an enrolment token", () => {
  it("for a Device never enrolled: when it has none or it is about to expire", () => {
    assert.deepEqual(enrollmentTokenWanted(device(), ttl, now), { replaces: undefined, newRequest: false });
    assert.equal(enrollmentTokenWanted(device(undefined, token(now + ttl / 2)), ttl, now), undefined);
    assert.ok(enrollmentTokenWanted(device(undefined, token(now + 30_000)), ttl, now));
  });

  it("never for an enrolled Device unless an administrator set spec.identity.reenroll", () => {
    assert.equal(enrollmentTokenWanted(device({ publicKeySHA256: keyA }), ttl, now), undefined);
    assert.equal(enrollmentTokenWanted(device({ publicKeySHA256: keyA, reenroll: false }), ttl, now), undefined);
    // Even with an expired first-enrolment token on record.
    assert.equal(enrollmentTokenWanted(device({ publicKeySHA256: keyA }, token(now - 1)), ttl, now), undefined);
  });

  it("for a re-enrolment: a token bound to the current key, once per request, renewed when it expires", () => {
    const asked = { publicKeySHA256: keyA, reenroll: true };
    // A first-enrolment token, however fresh, is not one for this key: a new request.
    assert.deepEqual(enrollmentTokenWanted(device(asked, token(now + ttl)), ttl, now), {
      replaces: keyA,
      newRequest: true,
    });
    assert.equal(enrollmentTokenWanted(device(asked, token(now + ttl, keyA)), ttl, now), undefined);
    assert.deepEqual(enrollmentTokenWanted(device(asked, token(now + 1000, keyA)), ttl, now), {
      replaces: keyA,
      newRequest: false,
    });
    // Re-enrolled to key B and asked again: a new request for key B.
    assert.equal(
      enrollmentTokenWanted(device({ publicKeySHA256: keyB, reenroll: true }, token(now + ttl, keyA)), ttl, now)
        ?.newRequest,
      true,
    );
  });

  it("says when the current token expires only while the Device should hold it (for the reconciler's next look)", () => {
    assert.equal(currentTokenExpiry(device(undefined, token(now + ttl))), now + ttl);
    assert.equal(currentTokenExpiry(device()), undefined, "none written yet");
    assert.equal(currentTokenExpiry(device({ publicKeySHA256: keyA }, token(now + ttl))), undefined, "enrolled");
    const asked = { publicKeySHA256: keyA, reenroll: true };
    assert.equal(currentTokenExpiry(device(asked, token(now + ttl, keyA))), now + ttl);
    assert.equal(currentTokenExpiry(device(asked, token(now + ttl))), undefined, "a first-enrolment token");
  });

  it("names the field manager that set reenroll, and when", () => {
    const d = device({ publicKeySHA256: keyA, reenroll: true });
    (d.metadata as Record<string, unknown>).managedFields = [
      { manager: "devicestreams-hub", fieldsV1: { "f:spec": { "f:identity": { "f:publicKeySHA256": {} } } } },
      {
        manager: "kubectl-patch",
        time: "2030-01-01T00:00:00Z",
        fieldsV1: { "f:spec": { "f:identity": { "f:reenroll": {} } } },
      },
    ];
    assert.equal(
      reenrollmentRequester(d),
      'spec.identity.reenroll set by field manager "kubectl-patch" at 2030-01-01T00:00:00Z',
    );
    assert.equal(
      reenrollmentRequester(device({ publicKeySHA256: keyA, reenroll: true })),
      "spec.identity.reenroll set",
    );
  });
});
