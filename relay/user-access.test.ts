import assert from "node:assert/strict";
import { createRegistry } from "../runtime/http-endpoints.ts";
import type { Logger } from "../runtime/log.ts";
import type { AccessReviewResponse } from "../transport/access-review-service.ts";
import { relayMetrics } from "./metrics.ts";
import { AccessCache, maxAccessTtlMs, maxReviewsInFlight, tokenKey, UserAccess } from "./user-access.ts";

const quiet: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => quiet,
  enabled: () => false,
};
const allowed = { ok: true as const, user: "alice" };

describe("relay access cache", () => {
  it("answers for at most the TTL, capped at 10 s", () => {
    const cache = new AccessCache(60_000);
    assert.equal(cache.ttlMs, maxAccessTtlMs);
    cache.set("k", allowed, 1_000);
    assert.deepEqual(cache.get("k", 1_000 + 9_999), allowed);
    assert.equal(cache.get("k", 1_000 + 10_000), undefined);
    assert.equal(cache.size, 0, "an expired entry is dropped when read");
    const short = new AccessCache(2_000);
    short.set("k", allowed, 0);
    assert.equal(short.get("k", 2_000), undefined);
  });

  it("holds at most maxEntries, dropping the oldest answer first", () => {
    const cache = new AccessCache(10_000, 3);
    for (const k of ["a", "b", "c", "d"]) cache.set(k, allowed, 0);
    assert.equal(cache.size, 3);
    assert.equal(cache.get("a", 1), undefined);
    assert.deepEqual(cache.get("d", 1), allowed);
    // Answering a key again makes it the newest.
    cache.set("b", allowed, 2);
    cache.set("e", allowed, 2);
    assert.equal(cache.get("c", 3), undefined);
    assert.deepEqual(cache.get("b", 3), allowed);
  });

  it("keys tokens by their SHA-256, never the token itself", () => {
    assert.match(tokenKey("secret-token"), /^[0-9a-f]{64}$/);
    assert.ok(!tokenKey("secret-token").includes("secret"));
  });
});

describe("relay user access", () => {
  const setup = (answer: () => Promise<AccessReviewResponse>, ttlMs = 10_000) => {
    let clock = 0;
    let asked = 0;
    const access = new UserAccess({
      reviewer: {
        review: () => {
          asked++;
          return answer();
        },
      },
      ttlMs,
      stream: () => "ns/s",
      metrics: relayMetrics(createRegistry("relay")),
      log: quiet,
      now: () => clock,
    });
    return { access, asked: () => asked, tick: (ms: number) => (clock += ms) };
  };

  it("asks once per token within the TTL (concurrent callers share one review), again after it", async () => {
    const t = setup(async () => ({ allowed: true, user: "alice" }));
    const results = await Promise.all([t.access.check("tok"), t.access.check("tok"), t.access.check("tok")]);
    assert.deepEqual(results, [allowed, allowed, allowed]);
    assert.equal(t.asked(), 1);
    t.tick(9_999);
    await t.access.check("tok");
    assert.equal(t.asked(), 1);
    t.tick(1);
    await t.access.check("tok");
    assert.equal(t.asked(), 2);
    await t.access.check("other-token");
    assert.equal(t.asked(), 3);
  });

  it("asks about at most maxReviewsInFlight distinct tokens at once and refuses the rest, asking nothing", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const t = setup(async () => {
      await gate;
      return { allowed: true, user: "alice" };
    });
    const waiting = Array.from({ length: maxReviewsInFlight }, (_, i) => t.access.check(`t${i}`));
    const extra = await t.access.check("one-more");
    assert.equal(extra.ok, false);
    assert.equal((extra as { code: string }).code, "DS_ACCESS_REVIEW_UNAVAILABLE");
    assert.match((extra as { message: string }).message, /not a permission problem: retry/);
    assert.equal(t.asked(), maxReviewsInFlight);
    release();
    await Promise.all(waiting);
    assert.equal((await t.access.check("one-more")).ok, true);
  });

  it("caches a denial too, but not a failed review, which says to retry", async () => {
    const denied = setup(async () => ({ allowed: false, code: "DS_USER_FORBIDDEN", message: "no connect" }));
    const r = await denied.access.check("tok");
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, "DS_USER_FORBIDDEN");
    await denied.access.check("tok");
    assert.equal(denied.asked(), 1);

    const down = setup(async () => {
      throw new Error("14 UNAVAILABLE: connect ECONNREFUSED");
    });
    const f = await down.access.check("tok");
    assert.equal(!f.ok && f.code, "DS_ACCESS_REVIEW_UNAVAILABLE");
    assert.match(!f.ok ? f.message : "", /could not ask the operator.*not a permission problem: retry/);
    await down.access.check("tok");
    assert.equal(down.asked(), 2);
  });

  it("without a reviewer (static relay) refuses Kubernetes tokens and says what to present", async () => {
    const access = new UserAccess({
      ttlMs: 10_000,
      stream: () => "s",
      metrics: relayMetrics(createRegistry("relay")),
      log: quiet,
    });
    const r = await access.check("tok");
    assert.equal(!r.ok && r.code, "DS_USER_TOKEN_UNSUPPORTED");
  });
});

describe("relay user connections counter", () => {
  it("names the first 50 users and counts every later one as other", async () => {
    const registry = createRegistry("relay");
    let n = 0;
    const access = new UserAccess({
      reviewer: { review: async () => ({ allowed: true, user: `user-${n++}` }) },
      ttlMs: 0,
      stream: () => "ns/s",
      metrics: relayMetrics(registry),
      log: quiet,
    });
    const call = (token: string) =>
      ({
        metadata: { get: () => [token] },
        getPeer: () => "peer",
        emit: () => true,
      }) as unknown as Parameters<UserAccess["admit"]>[0];
    for (let i = 0; i < 60; i++) assert.equal(await access.admit(call(`t${i}`)), `user-${i}`);
    const text = await registry.getSingleMetricAsString("devicestreams_relay_user_connections_total");
    const users = [...text.matchAll(/user="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(users.length, 51);
    assert.ok(users.includes("user-49") && !users.includes("user-50"));
    assert.match(text, /user="other"} 10\b/);
  });
});
