// The hub: a gRPC server on every operator replica (not only the leader). Enroll is open to any
// TLS client (the enrolment token is the credential); Session needs a device certificate from
// the operator CA, and the live Device it names (same UID, not disabled, same key); RelayAccess
// needs a relay certificate and answers only about the stream it names (access-review.ts).
import {
  experimental,
  status as grpcStatus,
  Server,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { Registry } from "prom-client";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { deviceResource, deviceStreamResource } from "../../api/v1alpha1.ts";
import { isNotFound, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import type { Pod } from "../../kube/types.ts";
import { ConnectionGate, type ConnectionLimits, grpcJsFront } from "../../runtime/connection-gate.ts";
import { deviceFromCertificate } from "../../runtime/device-certificate.ts";
import type { ErrorCode } from "../../runtime/error-codes.ts";
import { errorDetail } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { LogSampler } from "../../runtime/log-sampler.ts";
import { certificateValidity, issueCertificate, type KeyPairPem } from "../../runtime/pki.ts";
import {
  type AccessReviewRequest,
  type AccessReviewResponse,
  relayAccessService,
} from "../../transport/access-review-service.ts";
import {
  type AgentControl,
  type EnrollRequest,
  type EnrollResponse,
  type HubControl,
  hubService,
} from "../../transport/hub-service.ts";
import type { EventRecorder } from "../events.ts";
import { AccessReviews } from "./access-review.ts";
import { type EnrollRateLimit, EnrollService } from "./enroll-service.ts";
import { HubError } from "./enrollment.ts";
import { hubMetrics } from "./metrics.ts";
import { HubReports } from "./reports.ts";
import { AgentSession } from "./sessions.ts";
import { hubTokenKey } from "./token-key.ts";
import "../../runtime/tls.ts"; // TLS 1.3 floor for every context

export interface HubOptions {
  listen: string;
  dnsNames: string[];
  ipAddresses: string[];
  certValidityMs: number;
  /** Heartbeats refresh Device.status.lastSeen at most this often. */
  lastSeenEveryMs?: number;
  /** Enroll attempts per source address (defaults: 5 per minute, burst 5). */
  enrollRateLimit?: EnrollRateLimit;
  /** Who may hold a connection to the hub, and for how long before a successful Enroll or Session. */
  limits: ConnectionLimits;
}

export interface HubDeps {
  /** The hub's own client (its own sockets), so that hub load cannot starve the reconciler's. */
  client: KubeClient;
  devices: Informer<Device>;
  streams: Informer<DeviceStream>;
  pods: Informer<Pod>;
  events: EventRecorder;
  ca: KeyPairPem;
  replica: string;
  registry: Registry;
  log: Logger;
}

// One provider serves both the CA and the identity, so grpc-js's argument order (its exported
// function passes them to the constructor swapped) cannot matter. Listeners are called on a later
// tick: grpc-js registers its watcher only after adding them and would miss a synchronous update.
function staticProvider(caPem: string, certPem: string, keyPem: string): experimental.CertificateProvider {
  return {
    addCaCertificateListener: (l) => queueMicrotask(() => l({ caCertificate: Buffer.from(caPem) })),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) =>
      queueMicrotask(() => l({ certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) })),
    removeIdentityCertificateListener: () => {},
  };
}

export class Hub {
  private readonly o: HubOptions;
  private readonly d: HubDeps;
  private readonly server = new Server({ "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 10_000 });
  private readonly sessions = new Map<string, AgentSession>();
  private readonly reports: HubReports;
  private readonly metrics;
  private readonly key: Buffer;
  private readonly enrollment: EnrollService;
  private readonly accessReviews: AccessReviews;
  private timer: NodeJS.Timeout | undefined;
  private gate: ConnectionGate | undefined;
  private readonly refusalLog = new LogSampler({ intervalMs: 10_000 });
  port = 0;
  /** notAfter of the serving certificate (issued at start, not renewed): the expiry alert reads it. */
  servingNotAfter: Date | undefined;

  constructor(o: HubOptions, d: HubDeps) {
    this.o = o;
    this.d = d;
    this.reports = new HubReports(d.client, d.events, d.log);
    this.metrics = hubMetrics(d.registry);
    this.key = hubTokenKey(d.ca);
    this.enrollment = new EnrollService(
      {
        client: d.client,
        devices: d.devices,
        ca: d.ca,
        tokenKey: this.key,
        certValidityMs: o.certValidityMs,
        events: d.events,
        log: d.log,
      },
      o.enrollRateLimit ?? { perMinute: 5, burst: 5 },
      this.metrics,
    );
    this.accessReviews = new AccessReviews({
      client: d.client,
      streams: d.streams,
      events: d.events,
      ca: d.ca,
      log: d.log,
    });
  }

  async start(): Promise<number> {
    const serving = await issueCertificate(this.d.ca, {
      commonName: this.o.dnsNames[0] ?? "devicestreams-hub",
      dnsNames: this.o.dnsNames,
      ipAddresses: this.o.ipAddresses,
      usage: "server",
      validityMs: 365 * 24 * 3600_000,
    });
    this.servingNotAfter = certificateValidity(serving.certPem).notAfter;
    // Client certificates are asked for but not required: Enroll is for devices that have none yet.
    const provider = staticProvider(this.d.ca.certPem, serving.certPem, serving.keyPem);
    const creds = experimental.createCertificateProviderServerCredentials(provider, provider, false);
    this.server.addService(hubService, {
      enroll: (call: ServerUnaryCall<EnrollRequest, EnrollResponse>, cb: sendUnaryData<EnrollResponse>) =>
        void this.enroll(call, cb),
      session: (call: ServerDuplexStream<AgentControl, HubControl>) => void this.session(call),
    });
    this.server.addService(relayAccessService, {
      review: (
        call: ServerUnaryCall<AccessReviewRequest, AccessReviewResponse>,
        cb: sendUnaryData<AccessReviewResponse>,
      ) => void this.review(call, cb),
    });
    // Refusals are counted, and logged one line per reason per 10 s: a flood must not flood the log.
    const refusals = new LogSampler({ intervalMs: 10_000 });
    this.gate = await ConnectionGate.listen(grpcJsFront(this.server, creds), {
      listen: this.o.listen,
      limits: this.o.limits,
      onRefused: (reason, source) => {
        this.metrics.grpcConnectionsRefused.inc({ reason });
        const suppressed = refusals.take(reason);
        if (suppressed !== undefined) {
          this.d.log.warn("hub connection refused", { reason, source, suppressed: suppressed || undefined });
        }
      },
      onOpen: (n) => this.metrics.grpcConnections.set(n),
    });
    this.port = this.gate.port;
    this.d.devices.on((event, device) => this.onDevice(event, device));
    this.d.streams.on((_e, ds) => this.sessions.get(`${ds.metadata.namespace}/${ds.spec.device}`)?.sync());
    // Only the session of the Device whose stream owns the Pod: with thousands of agents in one
    // namespace, syncing all of them on every relay Pod event is quadratic.
    this.d.pods.on((_e, pod) => {
      const owner = pod.metadata.ownerReferences?.find((r) => r.controller && r.kind === deviceStreamResource.kind);
      const ds = owner && this.d.streams.get(pod.metadata.namespace!, owner.name);
      if (ds) this.sessions.get(`${ds.metadata.namespace}/${ds.spec.device}`)?.sync();
    });
    // Offers also depend on the clock (expiry): look again now and then.
    this.timer = setInterval(() => {
      for (const s of this.sessions.values()) s.sync();
    }, 5000);
    this.timer.unref();
    this.d.log.info("hub serving", { listen: this.o.listen, port: this.port });
    return this.port;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.gate?.close();
    for (const s of [...this.sessions.values()]) s.close();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private async enroll(call: ServerUnaryCall<EnrollRequest, EnrollResponse>, cb: sendUnaryData<EnrollResponse>) {
    try {
      const response = await this.enrollment.handle(call.getPeer(), call.request);
      // The token proved the caller: its connection may stay (it renews or opens its session next).
      this.gate?.authenticated(call.getPeer());
      cb(null, response);
    } catch (err) {
      const e = err as HubError;
      cb({ code: e.grpcCode, details: e.details });
    }
  }

  /** A relay asks whether a user's token may connect to its stream (access-review.ts). */
  private async review(
    call: ServerUnaryCall<AccessReviewRequest, AccessReviewResponse>,
    cb: sendUnaryData<AccessReviewResponse>,
  ): Promise<void> {
    try {
      const relay = await this.accessReviews.relay(call.getAuthContext().sslPeerCertificate?.raw);
      // A relay the operator made: its connection may stay for its next reviews.
      this.gate?.authenticated(call.getPeer());
      const answer = await this.accessReviews.review(relay, call.request.token ?? "");
      this.metrics.accessReviews.inc({ result: answer.allowed ? "allowed" : (answer.code ?? "denied") });
      cb(null, answer);
    } catch (err) {
      const e = err instanceof HubError ? err : new HubError(grpcStatus.INTERNAL, "DS_HUB_INTERNAL", String(err), err);
      this.metrics.accessReviews.inc({ result: e.code });
      const suppressed = this.refusalLog.take(`review ${e.code}`);
      if (suppressed !== undefined) {
        this.d.log.warn("access review refused", {
          reason: e.code,
          detail: e.message,
          cause: e.cause instanceof Error ? e.cause.message : undefined,
          suppressed: suppressed || undefined,
        });
      }
      cb({ code: e.grpcCode, details: e.details });
    }
  }

  private async session(call: ServerDuplexStream<AgentControl, HubControl>): Promise<void> {
    const refuse = (result: string, code: grpcStatus, dsCode: ErrorCode, message: string) => {
      this.metrics.sessionAttempts.inc({ result });
      // Anyone may knock without a certificate, as often as they like: one line per reason per 10 s.
      // Past the certificate check only our own devices remain; each keeps its own line.
      const anonymous = result === "no_certificate" || result === "bad_certificate";
      const suppressed = this.refusalLog.take(anonymous ? dsCode : `${dsCode} ${message}`);
      if (suppressed !== undefined) {
        this.d.log.warn("agent session refused", {
          reason: dsCode,
          detail: message,
          suppressed: suppressed || undefined,
        });
      }
      call.emit("error", { code, details: errorDetail(dsCode, message) });
    };
    const peer = call.getAuthContext().sslPeerCertificate;
    if (!peer?.raw) {
      return refuse(
        "no_certificate",
        grpcStatus.UNAUTHENTICATED,
        "DS_DEVICE_CERT_REQUIRED",
        "no device certificate issued by this hub's CA was presented; enrol the agent first (--enrollment-token-file)",
      );
    }
    let id: Awaited<ReturnType<typeof deviceFromCertificate>>;
    try {
      id = await deviceFromCertificate(peer.raw, this.d.ca.certPem);
    } catch (err) {
      return refuse("bad_certificate", grpcStatus.UNAUTHENTICATED, "DS_DEVICE_CERT_INVALID", (err as Error).message);
    }
    const where = `Device "${id.name}" in namespace "${id.namespace}"`;
    let device: Device | undefined;
    try {
      // Fresh from the API server, not the cache: a just-enrolled device must not wait for a watch.
      device = await this.d.client.get<Device>(objectPath({ ...deviceResource }, id.namespace, id.name));
    } catch (err) {
      if (!isNotFound(err)) {
        return refuse("error", grpcStatus.UNAVAILABLE, "DS_HUB_UNAVAILABLE", "the hub cannot read Devices now; retry");
      }
    }
    if (!device || device.metadata.uid !== id.uid || device.metadata.deletionTimestamp) {
      return refuse(
        "revoked",
        grpcStatus.UNAUTHENTICATED,
        "DS_DEVICE_REVOKED",
        `${where} this certificate was issued for no longer exists (deleted or re-created); access is revoked — enrol again with a new token`,
      );
    }
    if (device.spec?.identity?.publicKeySHA256 !== id.publicKeySha256) {
      return refuse(
        "revoked",
        grpcStatus.UNAUTHENTICATED,
        "DS_DEVICE_REVOKED",
        `the certificate's key is not the one ${where} enrolled with; enrol again`,
      );
    }
    if (device.spec?.disabled) {
      return refuse(
        "disabled",
        grpcStatus.PERMISSION_DENIED,
        "DS_DEVICE_DISABLED",
        `${where} is disabled (spec.disabled)`,
      );
    }
    this.metrics.sessionAttempts.inc({ result: "accepted" });
    // Only now may the connection stay: a certificate our CA signed for a revoked Device is no pass.
    this.gate?.authenticated(call.getPeer());
    const session = new AgentSession(call, id, {
      replica: this.d.replica,
      devices: this.d.devices,
      streams: this.d.streams,
      pods: this.d.pods,
      reports: this.reports,
      ca: this.d.ca,
      tokenKey: this.key,
      certValidityMs: this.o.certValidityMs,
      lastSeenEveryMs: this.o.lastSeenEveryMs ?? 30_000,
      helloTimeoutMs: 10_000,
      metrics: this.metrics,
      log: this.d.log,
    });
    // The newest session of a device wins: an old one is a half-dead connection.
    this.sessions
      .get(session.key)
      ?.fail(grpcStatus.ABORTED, "DS_SESSION_REPLACED", "a newer session of this device took over");
    this.sessions.set(session.key, session);
    this.metrics.sessions.set(this.sessions.size);
    session.onEnd = () => {
      if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
      this.metrics.sessions.set(this.sessions.size);
    };
    session.start();
  }

  private onDevice(event: string, device: Device): void {
    const key = `${device.metadata.namespace}/${device.metadata.name}`;
    const s = this.sessions.get(key);
    if (!s) return;
    if (event === "delete" || device.metadata.uid !== s.id.uid || device.metadata.deletionTimestamp) {
      s.fail(
        grpcStatus.UNAUTHENTICATED,
        "DS_DEVICE_REVOKED",
        `Device "${device.metadata.name}" was deleted; access is revoked`,
      );
    } else if (device.spec?.disabled) {
      s.fail(grpcStatus.PERMISSION_DENIED, "DS_DEVICE_DISABLED", `Device "${device.metadata.name}" was disabled`);
    } else if (device.spec?.identity?.publicKeySHA256 !== s.id.publicKeySha256) {
      s.fail(
        grpcStatus.UNAUTHENTICATED,
        "DS_DEVICE_REVOKED",
        `Device "${device.metadata.name}" enrolled another key; this certificate's key is revoked`,
      );
    }
  }
}
