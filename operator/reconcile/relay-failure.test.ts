import assert from "node:assert/strict";
import { KubeApiError } from "../../kube/client.ts";
import { RelayFailures, RelayWriteError, writing } from "./relay-failure.ts";

const apiError = (status: number, words: string) =>
  new KubeApiError(status, "x", `PATCH /api/v1/namespaces/ns/pods/st-relay: ${status} ${words}`);
const refused = (status: number, words: string) => new RelayWriteError("Pod", "st-relay", apiError(status, words));

describe("relay write failures", () => {
  it("names the kind of failure and carries the API server's words, without our request line", () => {
    const f = new RelayFailures();
    const invalid = f.record("ns/st", "u1", refused(422, 'Pod "st-relay" is invalid: must be <= limit'), 0);
    assert.equal(invalid.reason, "RelayInvalid");
    assert.equal(
      invalid.summary,
      'the API server refused the relay Pod st-relay as invalid: Pod "st-relay" is invalid: must be <= limit',
    );
    assert.doesNotMatch(invalid.message, /PATCH|\/api\/v1/);
    assert.equal(f.record("ns/b", "u2", refused(403, "exceeded quota"), 0).reason, "RelayForbidden");
    assert.equal(f.record("ns/c", "u3", refused(500, "failed calling webhook"), 0).reason, "RelayAPIError");
    assert.equal(f.record("ns/d", "u4", refused(0, "ECONNREFUSED"), 0).reason, "RelayAPIError");
  });

  it("waits longer after each refusal, slowly for permanent ones, and says when it tries again", () => {
    const f = new RelayFailures();
    const waits = (status: number) =>
      Array.from({ length: 9 }, () => {
        const now = 1_000_000;
        return f.record(`k${status}`, "u", refused(status, "no"), now).retryAt - now;
      });
    assert.deepEqual(
      waits(503),
      [1, 2, 4, 8, 16, 32, 60, 60, 60].map((x) => x * 1000),
    );
    assert.deepEqual(
      waits(403),
      [5, 10, 20, 40, 80, 120, 120, 120, 120].map((x) => x * 1000),
    );
    const last = f.get("k503", "u")!;
    assert.match(last.message, /retrying with backoff: the operator tries again in 60s \(attempt 9\)/);
    assert.ok(f.waiting("k503", "u", 1_000_000 + 59_000));
    assert.ok(!f.waiting("k503", "u", 1_000_000 + 60_000));
  });

  it("ignores a failure of an earlier stream of the same name", () => {
    const f = new RelayFailures();
    f.record("ns/st", "old", refused(403, "no"), 0);
    assert.equal(f.get("ns/st", "new"), undefined);
    assert.ok(!f.waiting("ns/st", "new", 1));
  });

  it("turns only API errors into relay write errors", async () => {
    await assert.rejects(
      writing("Service", "st-relay", () => Promise.reject(apiError(422, "bad"))),
      (err: unknown) => err instanceof RelayWriteError && err.kind === "Service" && err.objectName === "st-relay",
    );
    await assert.rejects(
      writing("Secret", "s", () => Promise.reject(new Error("CA not loaded"))),
      (err: unknown) => !(err instanceof RelayWriteError),
    );
  });
});
