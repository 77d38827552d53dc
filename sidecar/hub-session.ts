// Hub mode: enrol once, then hold one outbound control session with the hub. Offers are
// answered by the allow-list (offered-streams.ts); the certificate is renewed over the session
// at 2/3 of its validity; a lost session is reopened with jittered backoff, and `waitingFor`
// says what the agent waits for (log, /readyz and the hub_state metric).
import { type ClientDuplexStream, type StatusObject, status } from "@grpc/grpc-js";
import { Backoff } from "../runtime/backoff.ts";
import { DeviceStreamsError, describeError } from "../runtime/errors.ts";
import type { KeepaliveOptions } from "../runtime/grpc-options.ts";
import type { Logger } from "../runtime/log.ts";
import { createCertificateRequestForKey, publicKeySha256 } from "../runtime/pki.ts";
import { RenewableIdentity } from "../runtime/tls.ts";
import { version } from "../runtime/version.ts";
import { callError, hubFromFlags } from "../transport/call-error.ts";
import { HubClient, type HubClientOptions } from "../transport/hub-client.ts";
import type { AgentControl, HubControl } from "../transport/hub-service.ts";
import type { ProxySettings } from "../transport/proxy.ts";
import type { AllowList } from "./allow-list.ts";
import {
  type DeviceName,
  enrollDevice,
  loadIdentity,
  renewAtMs,
  type StoredIdentity,
  storeCertificate,
} from "./device-identity.ts";
import type { AgentMetrics } from "./metrics.ts";
import { OfferedStreams } from "./offered-streams.ts";

const pemEnd = "-----END CERTIFICATE-----";

export type HubState = "enrolling" | "connecting" | "connected" | "waiting" | "revoked" | "stopped";
export const hubStates: HubState[] = ["enrolling", "connecting", "connected", "waiting", "revoked", "stopped"];

export interface HubSessionOptions {
  address: string;
  caPem: Buffer;
  serverName?: string;
  device: DeviceName;
  stateDir: string;
  tokenFile?: string;
  allowList: AllowList;
  dialTimeoutMs: number;
  keepalive: KeepaliveOptions;
  /** The HTTP proxy for the hub and every relay, if the network needs one. */
  proxy?: ProxySettings;
  heartbeatMs?: number;
  metrics: AgentMetrics;
  log: Logger;
  backoff?: Backoff;
  /** Makes the client of the hub; unit tests pass a stand-in. */
  hubClient?: (o: HubClientOptions) => HubConnection;
}

export type HubConnection = Pick<HubClient, "enroll" | "session" | "close">;

export class HubSession {
  state: HubState = "connecting";
  /** What the agent waits for now, for logs and readiness; empty when connected. */
  waitingFor = "";
  readonly streams: OfferedStreams;
  private readonly o: HubSessionOptions;
  private readonly backoff: Backoff;
  private identity: StoredIdentity | undefined;
  /** What relays see of the identity: renewed in place, so open relay channels use the new one. */
  private relayIdentity: RenewableIdentity | undefined;
  private client: HubConnection | undefined;
  private call: ClientDuplexStream<AgentControl, HubControl> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(o: HubSessionOptions) {
    this.o = o;
    this.backoff = o.backoff ?? new Backoff({ initialMs: 500, maxMs: 30_000 });
    this.streams = new OfferedStreams({
      allowList: o.allowList,
      dialTimeoutMs: o.dialTimeoutMs,
      keepalive: o.keepalive,
      proxy: o.proxy,
      metrics: o.metrics,
      log: o.log,
      report: (stream, state) => this.call?.write({ streamState: { stream, ...state } }),
      // Relays of streams bound to this Device admit its side only with this certificate.
      identity: () => this.relayIdentity,
    });
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.setState("stopped", "");
    clearTimeout(this.retry);
    this.clearTimers();
    this.call?.cancel();
    this.client?.close();
    this.streams.stopAll("the agent is stopping");
  }

  private setState(state: HubState, waitingFor: string): void {
    this.state = state;
    this.waitingFor = waitingFor;
    for (const s of hubStates) this.o.metrics.hubState.set({ state: s }, s === state ? 1 : 0);
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  private hubClient(identity?: StoredIdentity): HubConnection {
    const o: HubClientOptions = {
      address: this.o.address,
      tls: { caPem: this.o.caPem, certPem: identity?.certPem, keyPem: identity?.keyPem },
      keepalive: this.o.keepalive,
      serverName: this.o.serverName,
      proxy: this.o.proxy,
    };
    return this.o.hubClient ? this.o.hubClient(o) : new HubClient(o);
  }

  private later(why: string, err: unknown, state: HubState = "waiting"): void {
    if (this.stopped) return;
    const delay = this.backoff.next();
    const reason = describeError(err);
    this.setState(state, `${why}: ${reason}`);
    this.o.metrics.hubAttempts.inc({ result: state === "revoked" ? "revoked" : "failed" });
    this.o.log.warn(`${why}; retrying`, { reason, retryInMs: delay });
    this.retry = setTimeout(() => void this.run(), delay);
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    this.identity ??= loadIdentity(this.o.stateDir);
    if (!this.identity) {
      this.setState("enrolling", "enrolment with the hub");
      const hub = this.hubClient();
      try {
        this.identity = await enrollDevice(hub, this.o.stateDir, this.o.device, this.o.tokenFile);
        // The administrator compares this with the Device's Fingerprint (kubectl get device -o wide).
        this.o.log.info("enrolled with the hub; the key stays in the state directory", {
          dir: this.o.stateDir,
          publicKeySHA256: publicKeySha256(`${this.identity.certPem.split(pemEnd)[0]}${pemEnd}`),
        });
      } catch (err) {
        return this.later("cannot enrol with the hub", err, "enrolling");
      } finally {
        hub.close();
      }
    }
    if (this.relayIdentity) this.relayIdentity.update(this.identity.certPem, this.identity.keyPem);
    else this.relayIdentity = new RenewableIdentity(this.identity.certPem, this.identity.keyPem);
    try {
      this.connect(this.identity);
    } catch (err) {
      // A stored certificate or key that TLS cannot load: say so and keep trying (it may be fixed).
      this.later("cannot use the stored device certificate", err);
    }
  }

  private connect(identity: StoredIdentity): void {
    if (this.stopped) return;
    this.setState("connecting", `the hub at ${this.o.address} to answer`);
    this.client?.close();
    const client = this.hubClient(identity);
    this.client = client;
    const call = client.session();
    this.call = call;
    let connected = false;
    call.write({ hello: { agentVersion: version, services: this.o.allowList.services } });
    call.on("data", (m: HubControl) => {
      if (!connected) {
        connected = true;
        this.backoff.connected();
        this.setState("connected", "");
        this.o.metrics.hubAttempts.inc({ result: "connected" });
        this.o.log.info("control session with the hub is open", { hub: this.o.address });
        this.schedule(identity);
      }
      this.onMessage(call, m);
    });
    let ended = false;
    call.on("status", (s: StatusObject) => {
      if (ended) return;
      ended = true;
      this.clearTimers();
      if (this.call === call) this.call = undefined;
      client.close();
      if (this.stopped) return;
      const err =
        s.code === status.OK
          ? new DeviceStreamsError("DS_HUB_LOST", "the hub ended the session")
          : callError(s, hubFromFlags);
      if (
        err instanceof DeviceStreamsError &&
        (err.code === "DS_DEVICE_REVOKED" || err.code === "DS_DEVICE_DISABLED")
      ) {
        // The cloud withdrew this device's access: nothing it granted may keep running.
        this.streams.stopAll(err.code);
        this.o.log.error("the hub revoked this device's access", { reason: describeError(err) });
        return this.later("access revoked by the hub", err, "revoked");
      }
      this.later(connected ? "control session with the hub lost" : "cannot open a control session with the hub", err);
    });
    call.on("error", () => {});
  }

  private schedule(identity: StoredIdentity): void {
    const every = this.o.heartbeatMs ?? 10_000;
    const beat = () => {
      this.call?.write({ heartbeat: { sentAtMs: Date.now() } });
      this.timers.push(setTimeout(beat, every));
    };
    this.timers.push(setTimeout(beat, every));
    const renewIn = Math.max(0, renewAtMs(identity.certPem) - Date.now());
    this.timers.push(setTimeout(() => void this.renew(identity), Math.min(renewIn, 2 ** 31 - 1)));
  }

  private async renew(identity: StoredIdentity): Promise<void> {
    const { namespace, name } = this.o.device;
    const csrPem = await createCertificateRequestForKey(`${namespace}/${name}`, identity.keyPem);
    this.o.log.info("renewing the device certificate");
    this.call?.write({ renewRequest: { csrPem } });
  }

  private onMessage(call: ClientDuplexStream<AgentControl, HubControl>, m: HubControl): void {
    if (m.offer) {
      const stream = m.offer.stream ?? "";
      const reply = this.streams.offer(m.offer);
      call.write({ offerReply: { stream, ...reply } });
    } else if (m.withdraw) {
      this.streams.withdraw(m.withdraw.stream ?? "", m.withdraw.reason ?? "withdrawn by the hub");
    } else if (m.renewResponse?.certificateChainPem) {
      storeCertificate(this.o.stateDir, m.renewResponse.certificateChainPem);
      this.identity = { keyPem: this.identity!.keyPem, certPem: m.renewResponse.certificateChainPem };
      this.relayIdentity?.update(this.identity.certPem, this.identity.keyPem);
      this.o.metrics.renewals.inc();
      this.o.log.info("device certificate renewed; the next session uses it");
      const renewIn = Math.max(60_000, renewAtMs(this.identity.certPem) - Date.now());
      this.timers.push(setTimeout(() => void this.renew(this.identity!), Math.min(renewIn, 2 ** 31 - 1)));
    }
  }
}
