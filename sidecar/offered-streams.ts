// The streams the hub offered this device: each accepted one runs a RelaySession (the same
// attachment static mode uses), with one RelayClient per relay address shared by the streams on
// it. The allow-list decides before anything is dialled.
import { createHash } from "node:crypto";
import type { ErrorCode } from "../runtime/error-codes.ts";
import type { KeepaliveOptions } from "../runtime/grpc-options.ts";
import type { Logger } from "../runtime/log.ts";
import { setLongTimeout } from "../runtime/long-timeout.ts";
import type { RenewableIdentity } from "../runtime/tls.ts";
import { relayFromOffer } from "../transport/call-error.ts";
import type { Offer } from "../transport/hub-service.ts";
import type { ProxySettings } from "../transport/proxy.ts";
import { RelayClient } from "../transport/relay-client.ts";
import type { AllowList } from "./allow-list.ts";
import type { AgentMetrics } from "./metrics.ts";
import { RelaySession } from "./relay-session.ts";

export type Reply = { accepted: Record<string, never> } | { refused: { code: ErrorCode; message: string } };
export type StreamReport = { connected: Record<string, never> } | { closed: { reason: string } };

export interface OfferedStreamsOptions {
  allowList: AllowList;
  dialTimeoutMs: number;
  keepalive: KeepaliveOptions;
  proxy?: ProxySettings;
  metrics: AgentMetrics;
  log: Logger;
  /** The device's certificate, shown to relays (hub mode; undefined in unit tests). */
  identity?: () => RenewableIdentity | undefined;
  /** Tells the hub (when a session is open) how a stream's relay attachment goes. */
  report: (stream: string, state: StreamReport) => void;
}

interface Running {
  session: RelaySession;
  relayKey: string;
  /** Cancels the withdrawal at the stream's expiry. */
  cancelExpiry: () => void;
}

export class OfferedStreams {
  private readonly o: OfferedStreamsOptions;
  private readonly relays = new Map<string, { client: RelayClient; users: number }>();
  private readonly running = new Map<string, Running>();

  constructor(o: OfferedStreamsOptions) {
    this.o = o;
  }

  get streams(): string[] {
    return [...this.running.keys()].sort();
  }

  offer(offer: Offer): Reply {
    const stream = offer.stream ?? "";
    // Hubs that predate several services per stream name one, in `service`.
    const services = offer.services?.length ? offer.services : [offer.service ?? ""];
    const missing = services.filter((s) => !this.o.allowList.lookup(s));
    if (missing.length) {
      const has = this.o.allowList.services.join(", ") || "nothing";
      const names = missing.map((s) => `"${s}"`).join(", ");
      this.o.log.warn("refused a stream: service not in the allow-list", { stream, service: missing.join(",") });
      return {
        refused: {
          code: "DS_SERVICE_NOT_ALLOWED",
          message: `service ${names} is not in this device's allow-list (it has: ${has}); add it to the agent's --allow or config to serve it`,
        },
      };
    }
    const expiresAt = Number(offer.expiresAtMs ?? 0);
    if (expiresAt && expiresAt <= Date.now()) {
      return { refused: { code: "DS_STREAM_EXPIRED", message: "the offer had expired when it arrived" } };
    }
    const relayKey = [
      offer.relayAddress,
      offer.relayServerName,
      createHash("sha256")
        .update(offer.relayCaPem ?? "")
        .digest("hex"),
    ].join("|");
    let existing = this.running.get(stream);
    // The relay moved (its Pod was replaced): serve the stream from its new address.
    if (existing && existing.relayKey !== relayKey) {
      this.withdraw(stream, "the relay moved");
      existing = undefined;
    }
    if (existing) {
      // A re-offer after the hub session came back: the relay session never stopped.
      if (existing.session.state === "attached") this.o.report(stream, { connected: {} });
      return { accepted: {} };
    }
    let relay = this.relays.get(relayKey);
    if (!relay) {
      relay = {
        client: new RelayClient({
          address: offer.relayAddress ?? "",
          tls: { caPem: offer.relayCaPem ?? undefined, identity: this.o.identity?.() },
          keepalive: this.o.keepalive,
          serverName: offer.relayServerName || undefined,
          proxy: this.o.proxy,
        }),
        users: 0,
      };
      this.relays.set(relayKey, relay);
    }
    relay.users++;
    let attached = false;
    const session = new RelaySession({
      relay: relay.client,
      dialled: relayFromOffer,
      token: offer.destinationToken ?? "",
      services,
      allowList: this.o.allowList,
      dialTimeoutMs: this.o.dialTimeoutMs,
      metrics: this.o.metrics,
      log: this.o.log.child(stream),
      // Transitions only: a relay that keeps refusing reconnects must not flood the hub (and Events).
      onState: (state, detail) => {
        if (state === "attached") {
          attached = true;
          this.o.report(stream, { connected: {} });
        } else if ((state === "waiting" || state === "refused") && attached) {
          attached = false;
          this.o.report(stream, { closed: { reason: detail } });
        }
      },
    });
    // A long timer: a stream may live 720h, past what one Node timer waits.
    const cancelExpiry = expiresAt
      ? setLongTimeout(() => this.withdraw(stream, "the stream expired"), Math.max(0, expiresAt - Date.now()), {
          unref: true,
        })
      : () => {};
    this.running.set(stream, { session, relayKey, cancelExpiry });
    this.o.log.info("accepted a stream", { stream, services: services.join(","), relay: offer.relayAddress ?? "" });
    session.start();
    return { accepted: {} };
  }

  withdraw(stream: string, reason: string): void {
    const r = this.running.get(stream);
    if (!r) return;
    this.running.delete(stream);
    r.cancelExpiry();
    r.session.stop();
    this.o.log.info("stopped serving a stream", { stream, reason });
    const relay = this.relays.get(r.relayKey);
    if (relay && --relay.users === 0) {
      relay.client.close();
      this.relays.delete(r.relayKey);
    }
  }

  stopAll(reason: string): void {
    for (const stream of [...this.running.keys()]) this.withdraw(stream, reason);
  }
}
