// The hub as a component of every replica. It needs the CA, which the first replica to get there
// creates, so it starts in the background (the manager does not wait for it) and retries a failed
// start with backoff until the operator stops.
import { retry } from "../../runtime/backoff.ts";
import { describeError } from "../../runtime/errors.ts";
import type { OperatorCA } from "../ca.ts";
import type { Component } from "../manager.ts";
import { Hub, type HubDeps, type HubOptions } from "./server.ts";

export class HubComponent implements Component {
  readonly name = "hub";
  private readonly o: HubOptions;
  private readonly d: Omit<HubDeps, "ca">;
  private readonly ca: OperatorCA;
  private hub: Hub | undefined;
  private starting: Promise<void> | undefined;

  constructor(o: HubOptions, d: Omit<HubDeps, "ca">, ca: OperatorCA) {
    this.o = o;
    this.d = d;
    this.ca = ca;
  }

  /** The bound port once the hub serves. */
  get port(): number | undefined {
    return this.hub?.port;
  }

  /** notAfter of the hub's serving certificate once it serves. */
  get servingNotAfter(): Date | undefined {
    return this.hub?.servingNotAfter;
  }

  start(signal: AbortSignal): void {
    this.starting ??= this.run(signal);
  }

  async stop(): Promise<void> {
    await this.starting;
    await this.hub?.stop();
  }

  private async run(signal: AbortSignal): Promise<void> {
    const ca = await this.ca.loaded(signal);
    if (!ca) return;
    await retry(
      async () => {
        const hub = new Hub(this.o, { ...this.d, ca });
        await hub.start();
        this.hub = hub;
      },
      signal,
      (err, retryInMs) => this.d.log.warn("cannot start the hub; retrying", { error: describeError(err), retryInMs }),
    );
  }
}
