// setTimeout for delays beyond what Node's timers hold. A delay above 2^31-1 ms (24.8 days) is not
// waited: Node warns (TimeoutOverflowWarning) and fires after 1 ms. A DeviceStream may live 720h.

/** The longest delay one Node timer waits. */
export const maxTimerMs = 2 ** 31 - 1;

/**
 * Calls `fn` after `delayMs`, however long, in steps of at most maxTimerMs. Returns what cancels
 * it. `unref`: the wait does not keep the process alive.
 */
export function setLongTimeout(fn: () => void, delayMs: number, o: { unref?: boolean } = {}): () => void {
  const at = Date.now() + delayMs;
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = at - Date.now();
    timer = left > maxTimerMs ? setTimeout(arm, maxTimerMs) : setTimeout(fn, Math.max(0, left));
    if (o.unref) timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
