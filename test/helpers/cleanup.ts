// Stops what a test started in its body once the test is over, whatever its outcome. Mocha cannot
// cancel a test it has timed out: the body keeps running, so a `finally` in it would stop an
// operator or a process only when the body's own waits give up, minutes later, and the run could
// not end meanwhile. This file is also mocha's root hook plugin (`require` in .mocharc.json): its
// afterEach runs after every test, after the suites' own afterEach hooks.

interface Stoppable {
  stop(): unknown;
}

const started = new Set<Stoppable>();
/** Set once every test has run: what a timed-out body starts from then on is stopped at once. */
let runOver = false;

/**
 * Stops `thing` after the current test (it may also be stopped earlier; stop() must be safe to
 * call twice). Only for what a test body starts: something a `before` hook starts for several
 * tests would be stopped after the first.
 */
export function stopAfterTest<T extends Stoppable>(thing: T): T {
  if (runOver) void Promise.resolve(thing.stop()).catch(() => {});
  else started.add(thing);
  return thing;
}

/** Drops `thing` from the list (it ended by itself), so the list does not grow over a run. */
export function forgetStopped(thing: Stoppable): void {
  started.delete(thing);
}

async function stopStarted(): Promise<void> {
  const all = [...started];
  started.clear();
  const failed = (await Promise.allSettled(all.map(async (t) => t.stop()))).filter((r) => r.status === "rejected");
  if (failed.length) {
    throw new AggregateError(
      failed.map((r) => r.reason),
      "stopping what the test started failed",
    );
  }
}

export const mochaHooks = {
  afterEach: stopStarted,
  // A timed-out body may start something after its test's afterEach: that is stopped after the
  // test running then, or, after the last test, here.
  async afterAll(): Promise<void> {
    runOver = true;
    await stopStarted();
  },
};
