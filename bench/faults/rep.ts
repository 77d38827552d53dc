// One repetition of a fault loop: a transfer starts, the fault is injected after a random delay
// (if the transfer is still running), and the outcome is classified against the time budget.
import { setTimeout as delay } from "node:timers/promises";
import { echoTransfer, type OutcomeKind } from "../../test/helpers/echo-transfer.ts";

export interface RepResult {
  kind: OutcomeKind;
  /** Whether the fault was injected while the transfer was still running. */
  faultHit: boolean;
  /** From the fault to the outcome (ms); undefined when the transfer ended before the fault. */
  afterFaultMs?: number;
  detail: string;
}

export interface RepOptions {
  port: number;
  bytes: number;
  bytesPerSecond: number;
  /** When to inject, after the transfer starts. */
  faultDelayMs: number;
  inject(): Promise<void> | void;
  /** The outcome must come within this after the fault; later is a hang. */
  hangAfterMs: number;
}

export async function runRep(o: RepOptions): Promise<RepResult> {
  const t = echoTransfer(o.port, o.bytes, o.bytesPerSecond);
  try {
    const early = await Promise.race([t.outcome, delay(o.faultDelayMs, undefined, { ref: false })]);
    if (early) return { kind: early.kind, faultHit: false, detail: `ended before the fault: ${early.detail}` };
    const { sent, received } = t.progress();
    const faultAt = Date.now();
    await o.inject();
    const hang = delay(o.hangAfterMs, undefined, { ref: false });
    const out = await Promise.race([t.outcome, hang]);
    if (!out) {
      const p = t.progress();
      return {
        kind: "hang",
        faultHit: true,
        detail: `no outcome ${o.hangAfterMs} ms after the fault (${p.sent} sent, ${p.received} echoed)`,
      };
    }
    return {
      kind: out.kind,
      faultHit: true,
      afterFaultMs: out.at - faultAt,
      detail: `fault at ${sent} sent/${received} echoed; ${out.detail}`,
    };
  } finally {
    t.destroy();
  }
}

export const randomBetween = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);
