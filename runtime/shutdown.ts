// First SIGTERM/SIGINT (or the signals given) drains, a second one stops at once (as konnectivity's agent does).
import type { Logger } from "./log.ts";

export function onShutdownSignals(
  log: Logger,
  drain: () => Promise<void>,
  now: () => Promise<void>,
  on: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT"],
): void {
  let signals = 0;
  const handler = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      log.info("signal received; draining (send it again to stop at once)", { signal });
      drain().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error("drain failed", { err });
          process.exit(1);
        },
      );
    } else {
      void now().finally(() => process.exit(1));
    }
  };
  for (const signal of on) process.on(signal, handler);
}
