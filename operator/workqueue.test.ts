import assert from "node:assert/strict";
import { WorkQueue } from "./workqueue.ts";

describe("WorkQueue", () => {
  it("queues a key once however often it is added", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("a");
    q.add("b");
    assert.equal(q.length, 2);
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), "b");
    assert.equal(q.length, 0);
  });

  it("never hands a key to two workers; an add while processing comes back after done", async () => {
    const q = new WorkQueue();
    q.add("a");
    const key = await q.get();
    q.add("a");
    assert.equal(q.length, 0, "must not be handed out while processing");
    q.done(key!);
    assert.equal(q.length, 1);
    assert.equal(await q.get(), "a");
  });

  it("wakes a waiting worker", async () => {
    const q = new WorkQueue();
    const next = q.get();
    q.add("x");
    assert.equal(await next, "x");
  });

  it("keeps the earliest of two delayed adds", async () => {
    const q = new WorkQueue();
    q.addAfter("a", 10_000);
    q.addAfter("a", 20);
    const started = Date.now();
    assert.equal(await q.get(), "a");
    assert.ok(Date.now() - started < 5000);
    q.shutdown();
  });

  it("waits a delay beyond Node's timer range instead of queueing at once (found by fuzzing)", async () => {
    // A stream with maxLifetime 720h asks to be looked at again in about 720h.
    const q = new WorkQueue();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      q.addAfter("a", 720 * 3600_000);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(q.length, 0, "queued at once: Node fired the overlong timer after 1 ms");
      assert.deepEqual(
        warnings.map((w) => w.name),
        [],
      );
    } finally {
      process.off("warning", onWarning);
      q.shutdown();
    }
  });

  it("backs off exponentially per key and resets on forget", () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000, burst: 1000 });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => q.addRateLimited("a")),
      [100, 200, 400, 800, 1000],
    );
    assert.equal(q.retries("a"), 5);
    q.forget("a");
    assert.equal(q.addRateLimited("a"), 100);
    q.shutdown();
  });

  it("limits the overall retry rate with a token bucket", () => {
    let now = 0;
    const q = new WorkQueue({ baseDelayMs: 1, qps: 10, burst: 2, now: () => now });
    assert.equal(q.addRateLimited("a"), 1);
    assert.equal(q.addRateLimited("b"), 1);
    assert.equal(q.addRateLimited("c"), 100, "third retry within the burst waits for a token");
    now += 1000;
    assert.equal(q.addRateLimited("d"), 1);
    q.shutdown();
  });

  it("returns undefined to waiting workers on shutdown", async () => {
    const q = new WorkQueue();
    const next = q.get();
    q.shutdown();
    assert.equal(await next, undefined);
  });
});
