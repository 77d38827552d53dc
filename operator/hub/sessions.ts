// One agent's control session on this replica: hello, offers, the agent's answers, heartbeats
// (lastSeen written at most every `lastSeenEveryMs`), renewal, and the Device marked disconnected
// when the session ends (unless another replica holds it by then).

import type { ServerDuplexStream } from "@grpc/grpc-js";
import { status as grpcStatus } from "@grpc/grpc-js";
import { expiresAt, streamServices } from "../../api/devicestream.ts";
import type { AcceptingDevice, Device, DeviceStream } from "../../api/v1alpha1.ts";
import type { Informer } from "../../kube/informer.ts";
import { parseObjectKey } from "../../kube/names.ts";
import type { Pod } from "../../kube/types.ts";
import { deviceUri, type PresentedCertificate } from "../../runtime/device-certificate.ts";
import { type ErrorCode, peerCode } from "../../runtime/error-codes.ts";
import { errorDetail } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { type KeyPairPem, publicKeySha256, signCertificateRequest } from "../../runtime/pki.ts";
import type { AgentControl, HubControl } from "../../transport/hub-service.ts";
import { byDevice } from "../caches.ts";
import { destinationToken } from "./enrollment-token.ts";
import { checkHello } from "./hello.ts";
import type { HubMetrics } from "./metrics.ts";
import { forDevice, OfferBook, relayAddress, relayPodName } from "./offers.ts";
import { pemChain } from "./pem.ts";
import { HubReports } from "./reports.ts";

export interface SessionDeps {
  replica: string;
  devices: Informer<Device>;
  streams: Informer<DeviceStream>;
  pods: Informer<Pod>;
  reports: HubReports;
  ca: KeyPairPem;
  tokenKey: Buffer;
  certValidityMs: number;
  lastSeenEveryMs: number;
  helloTimeoutMs: number;
  metrics: HubMetrics;
  log: Logger;
}

export class AgentSession {
  readonly key: string;
  readonly id: PresentedCertificate;
  private readonly call: ServerDuplexStream<AgentControl, HubControl>;
  private readonly d: SessionDeps;
  private readonly book = new OfferBook();
  private hello: { agentVersion: string; services: string[] } | undefined;
  private lastSeenWritten = 0;
  private ended = false;
  private helloTimer: NodeJS.Timeout | undefined;
  onEnd: (() => void) | undefined;

  constructor(call: ServerDuplexStream<AgentControl, HubControl>, id: PresentedCertificate, d: SessionDeps) {
    this.call = call;
    this.id = id;
    this.d = d;
    this.key = `${id.namespace}/${id.name}`;
  }

  start(): void {
    this.helloTimer = setTimeout(
      () => this.fail(grpcStatus.DEADLINE_EXCEEDED, "DS_PROTOCOL", "the agent sent no hello; reconnect"),
      this.d.helloTimeoutMs,
    );
    this.call.on("data", (m: AgentControl) => void this.onMessage(m).catch((err: unknown) => this.warn(err)));
    this.call.on("end", () => this.finish("the agent closed the session"));
    this.call.on("cancelled", () => this.finish("the session was cancelled or the connection dropped"));
    this.call.on("error", () => this.finish("the session failed"));
    this.call.on("close", () => this.finish("the connection closed"));
  }

  /** Ends the session from the hub's side with a status the agent can act on. */
  fail(code: grpcStatus, dsCode: ErrorCode, message: string): void {
    if (this.ended) return;
    this.call.emit("error", { code, details: errorDetail(dsCode, message) });
    this.finish(message);
  }

  private warn(err: unknown): void {
    this.d.log.warn("hub session step failed", { device: this.key, error: (err as Error).message });
  }

  private device(): Device | undefined {
    const dev = this.d.devices.get(this.id.namespace, this.id.name);
    return dev?.metadata.uid === this.id.uid ? dev : undefined;
  }

  private async onMessage(m: AgentControl): Promise<void> {
    if (this.ended) return;
    if (m.hello) {
      clearTimeout(this.helloTimer);
      const hello = checkHello(m.hello);
      if (!hello.ok) {
        this.fail(grpcStatus.INVALID_ARGUMENT, "DS_HELLO_INVALID", hello.message);
        return;
      }
      this.hello = { agentVersion: hello.agentVersion, services: hello.services };
      this.d.log.info("agent connected", { device: this.key, version: this.hello.agentVersion });
      // The first answer tells the agent its session is accepted.
      this.call.write({ heartbeat: { sentAtMs: Date.now() } });
      await this.writeDevice(true);
      this.sync();
      return;
    }
    if (!this.hello) return;
    if (m.heartbeat) {
      this.call.write({ heartbeat: { sentAtMs: Date.now() } });
      if (Date.now() - this.lastSeenWritten >= this.d.lastSeenEveryMs) await this.writeDevice(true);
    } else if (m.offerReply) {
      const stream = m.offerReply.stream ?? "";
      const ds = this.stream(stream);
      if (!ds) return;
      if (m.offerReply.refused) {
        this.book.update(stream, "refused");
        this.d.metrics.offers.inc({ result: "refused" });
        const r = m.offerReply.refused;
        await this.d.reports.refused(ds, peerCode(r.code, "DS_DEVICE_REFUSED"), r.message ?? "");
      } else if (this.book.update(stream, "accepted")) {
        this.d.metrics.offers.inc({ result: "accepted" });
        await this.d.reports.accepted(ds, this.acceptingDevice());
      }
    } else if (m.streamState) {
      const stream = m.streamState.stream ?? "";
      const ds = this.stream(stream);
      if (!ds) return;
      if (m.streamState.connected) {
        this.book.update(stream, "connected");
        if (!ds.status?.connectedAt) await this.d.reports.connected(ds, this.acceptingDevice());
      } else if (m.streamState.closed) {
        this.d.reports.closed(ds, m.streamState.closed.reason ?? "");
      }
    } else if (m.renewRequest) {
      await this.renew(m.renewRequest.csrPem ?? "");
    }
  }

  /** This session's Device as a stream records it: UID and enrolled key, both from the certificate. */
  private acceptingDevice(): AcceptingDevice {
    return { uid: this.id.uid, publicKeySHA256: this.id.publicKeySha256 };
  }

  /** The stream an agent's message names, if it is this device's; the name is the peer's to choose. */
  private stream(key: string): DeviceStream | undefined {
    const id = parseObjectKey(key);
    if (!id) {
      this.d.log.warn("agent named an invalid stream; ignored", { device: this.key, stream: key.slice(0, 300) });
      return undefined;
    }
    if (id.namespace !== this.id.namespace) return undefined; // a device only speaks for its own namespace
    const ds = this.d.streams.get(id.namespace, id.name);
    return ds?.spec.device === this.id.name ? ds : undefined;
  }

  /** Offers what is new, withdraws what ended. Called on every relevant watch event. */
  sync(): void {
    // Offers read both caches: with Pods not listed yet (a replica that started or lost the API
    // server), the relay's address would fall back to the Service name, and the agent would move
    // a working attachment there. The caches' first list syncs every session again.
    if (this.ended || !this.hello || !this.d.streams.synced || !this.d.pods.synced) return;
    const now = Date.now();
    const candidates = this.d.streams
      .byIndex(byDevice, `${this.id.namespace}/${this.id.name}`)
      .filter((s) => forDevice(s, this.id));
    const where = (ds: DeviceStream) => relayAddress(ds, this.d.pods.get(ds.metadata.namespace!, relayPodName(ds)));
    const changes = this.book.sync(candidates, now, where);
    for (const w of changes.withdraw) this.call.write({ withdraw: w });
    for (const ds of changes.offer) {
      const address = this.book.address(`${ds.metadata.namespace}/${ds.metadata.name}`)!;
      this.call.write({
        offer: {
          stream: `${ds.metadata.namespace}/${ds.metadata.name}`,
          // The first for agents that predate several services per stream; all of them for the rest.
          service: streamServices(ds.spec)[0] ?? "",
          services: streamServices(ds.spec),
          relayAddress: address,
          relayCaPem: this.d.ca.certPem,
          relayServerName: ds.status?.relay?.tlsServerName ?? "",
          destinationToken: destinationToken(this.d.tokenKey, ds.metadata.uid!),
          expiresAtMs: expiresAt(ds),
        },
      });
      this.d.metrics.offers.inc({ result: "offered" });
      this.d.reports.offered(ds);
    }
  }

  private async renew(csrPem: string): Promise<void> {
    const device = this.device();
    let keyHash = "";
    try {
      keyHash = publicKeySha256(csrPem);
    } catch {
      // falls through to the refusal below
    }
    if (!device || keyHash !== device.spec?.identity?.publicKeySHA256) {
      this.fail(
        grpcStatus.PERMISSION_DENIED,
        "DS_RENEWAL_REFUSED",
        "renewal must use the key the device enrolled with; to enrol a new key, an administrator sets spec.identity.reenroll to true",
      );
      return;
    }
    const cert = await signCertificateRequest(this.d.ca, csrPem, {
      commonName: this.key,
      uris: [deviceUri(this.id)],
      usage: "client",
      validityMs: this.d.certValidityMs,
    });
    // Signing is async: the session may have ended meanwhile, and its call must not be written.
    if (this.ended) return;
    this.call.write({ renewResponse: { certificateChainPem: pemChain(cert, this.d.ca.certPem) } });
    this.d.log.info("renewed device certificate", { device: this.key });
  }

  private async writeDevice(connected: boolean): Promise<void> {
    const device = this.device();
    if (!device) return;
    this.lastSeenWritten = Date.now();
    await this.d.reports.device(device, {
      connected,
      lastSeen: Date.now(),
      agentVersion: this.hello?.agentVersion,
      services: this.hello?.services,
      replica: this.d.replica,
    });
  }

  private finish(why: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.helloTimer);
    this.onEnd?.();
    // Our half too: an agent that only half-closed must not keep a call open here.
    if (!this.call.writableEnded) this.call.end();
    this.d.log.info("agent session ended", { device: this.key, reason: why });
    if (!this.hello) return;
    const device = this.device();
    // Another replica may hold a newer session already: then it owns the Device's status.
    if (!device || HubReports.heldElsewhere(device, this.d.replica)) return;
    void this.writeDevice(false).catch((err: unknown) => this.warn(err));
  }

  /** This replica is stopping: the agent reconnects to another one, which then owns the status. */
  close(): void {
    this.fail(grpcStatus.UNAVAILABLE, "DS_HUB_SHUTDOWN", "the hub replica is stopping; reconnect");
  }
}
