// Waiting in tests: poll a condition until it holds or a deadline passes, so no test sleeps a
// fixed time and hopes. The one other wait, `sleep`, is for tests that measure that nothing happens
// for a while; each use says so. The timers of waitFor and within do not keep the process alive: a
// test's own timeout (mocha's timer) does while it runs, and a test that mocha timed out, whose
// body keeps running, must not hold the run open once what it waited on is gone.
import { setTimeout as delay } from "node:timers/promises";

/** Thrown by a `waitFor` check to stop waiting at once (the process it waits on has died, ...). */
export class StopWaiting extends Error {}

/**
 * Calls `check` every `everyMs` until it returns a value other than undefined, null or false, and
 * returns that value. An error thrown by `check` counts as "not yet" (the object does not exist
 * yet, the server is still starting) and is quoted if the deadline passes; a `StopWaiting` error
 * ends the wait at once.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError === undefined ? "" : ` (last error: ${(lastError as Error).message ?? lastError})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await delay(everyMs, undefined, { ref: false });
  }
}

/** `promise`, or a failure naming `what` if it takes longer than `timeoutMs`. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A fixed pause: only for measuring that nothing happens for a while (say so where it is used). */
export const sleep = (ms: number): Promise<void> => delay(ms);
