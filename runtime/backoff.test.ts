import assert from "node:assert/strict";
import { Backoff, retry } from "./backoff.ts";

describe("retry", () => {
  const fast = () => new Backoff({ initialMs: 1, maxMs: 4, jitter: 0 });

  it("calls again after each failure, reporting the error and the delay, until it succeeds", async () => {
    let calls = 0;
    const failures: Array<[string, number]> = [];
    const value = await retry(
      async () => {
        if (++calls < 4) throw new Error(`attempt ${calls}`);
        return "loaded";
      },
      new AbortController().signal,
      (err, retryInMs) => failures.push([(err as Error).message, retryInMs]),
      fast(),
    );
    assert.equal(value, "loaded");
    assert.deepEqual(failures, [
      ["attempt 1", 1],
      ["attempt 2", 2],
      ["attempt 3", 3],
    ]);
  });

  it("gives up with undefined once the signal aborts, without waiting out the delay", async () => {
    const abort = new AbortController();
    let calls = 0;
    const result = retry(
      async () => {
        calls++;
        throw new Error("down");
      },
      abort.signal,
      () => abort.abort(),
      new Backoff({ initialMs: 60_000 }),
    );
    assert.equal(await result, undefined);
    assert.equal(calls, 1);
  });
});
