// Pool mode (--streams-dir): applies what the folder watch sees to the registry of streams and to
// the TLS contexts. A folder is read and checked whole first (relay/stream-folder.ts); only a
// valid one changes anything. A removed folder ends its stream: its connections are reset with
// DS_STREAM_MOVED, and its server names reach nothing (new handshakes for them are refused).
import { readdirSync } from "node:fs";
import { DeviceStreamsError } from "../runtime/errors.ts";
import type { KeepaliveOptions } from "../runtime/grpc-options.ts";
import { type Logger, withFields } from "../runtime/log.ts";
import { AccessReviewClient, type AccessReviewResponse } from "../transport/access-review-service.ts";
import type { RelayMetrics } from "./metrics.ts";
import type { RelayLimits } from "./pairing.ts";
import type { SniContexts } from "./sni-contexts.ts";
import { type FolderRead, readStreamFolder, type StreamFolder } from "./stream-folder.ts";
import type { StreamRegistry } from "./stream-registry.ts";
import { StreamRuntime } from "./stream-runtime.ts";
import { type StreamsDirWatch, watchStreamsDir } from "./streams-dir.ts";
import type { AccessReviewer } from "./user-access.ts";

export interface StreamPoolOptions {
  dir: string;
  registry: StreamRegistry;
  contexts: SniContexts;
  /** Whether the relay has --device-ca: a stream bound to a Device needs it. */
  deviceCa: boolean;
  flagLimits: RelayLimits;
  lifetimeMs: number;
  accessTtlMs: number;
  /** The hub's address and CA; each stream asks it with its own certificate (its identity there). */
  accessReview?: { address: string; caPem: Buffer; keepalive: KeepaliveOptions };
  metrics: RelayMetrics;
  log: Logger;
  pollMs?: number;
}

export class StreamPool {
  private readonly o: StreamPoolOptions;
  private readonly reviewers = new Map<string, LazyReviewer>();
  private watch: StreamsDirWatch | undefined;

  constructor(o: StreamPoolOptions) {
    this.o = o;
  }

  /** Loads every folder now (synchronously), then follows changes; a folder that is not there is a mistake. */
  start(): void {
    try {
      readdirSync(this.o.dir);
    } catch (err) {
      throw new DeviceStreamsError("DS_CONFIG", `cannot list --streams-dir: ${(err as Error).message}`);
    }
    this.watch = watchStreamsDir(
      this.o.dir,
      {
        changed: (id, path) => this.apply(id, readStreamFolder(path, id)),
        removed: (id) => this.remove(id),
        unreadable: (message) => this.o.log.warn("cannot list --streams-dir; keeping the streams in use", { message }),
      },
      { pollMs: this.o.pollMs },
    );
  }

  close(): void {
    this.watch?.close();
    for (const r of this.reviewers.values()) r.close();
  }

  /** What a folder's read did to the stream it holds. */
  apply(id: string, read: FolderRead): "added" | "changed" | "refused" {
    const refuse = (reason: string): "refused" => {
      this.o.metrics.configReloads.inc({ result: "refused" });
      const kept = this.o.registry.get(id) ? "; the stream keeps the one in use" : "; not served";
      this.o.log.warn(`stream folder refused${kept}`, { folder: id, reason });
      return "refused";
    };
    if (!read.ok) return refuse(read.reason);
    const f = read.folder;
    if (f.config.device && !this.o.deviceCa) {
      return refuse(
        `${id}/relay.json binds the stream to a Device: the relay needs --device-ca, the CA its certificate chains to`,
      );
    }
    const taken = (f.config.serverNames ?? []).find((n) => this.o.registry.nameTakenBy(n, id));
    if (taken) return refuse(`server name ${taken} belongs to folder ${this.o.registry.nameTakenBy(taken, id)}`);
    const current = this.o.registry.get(id);
    if (!current) return this.add(f);
    const previousNames = current.config.serverNames ?? [];
    const result = current.reload(f.config);
    if (!result.ok) return refuse(`${id}/relay.json: ${result.reason}`);
    this.o.contexts.set(id, f.cert, f.key);
    this.o.registry.reindex(id, previousNames);
    this.reviewers.get(id)?.setIdentity(f.cert, f.key);
    this.o.metrics.configReloads.inc({ result: "applied" });
    this.o.log.info("stream folder changed; open connections keep running", {
      folder: id,
      stream: f.config.stream,
      changed: result.changed.join(",") || "certificate or nothing",
    });
    return "changed";
  }

  remove(id: string): void {
    const stream = this.o.registry.remove(
      id,
      "DS_STREAM_MOVED",
      `this relay no longer serves the stream (its folder ${id} was removed: the stream was deleted or moved to another relay); connect again`,
    );
    this.o.contexts.delete(id);
    this.reviewers.get(id)?.close();
    this.reviewers.delete(id);
    if (stream) this.o.log.info("stream removed; its connections were reset", { folder: id, stream: stream.stream });
  }

  private add(f: StreamFolder): "added" {
    const log = withFields(this.o.log, { stream: f.config.stream });
    const review = this.o.accessReview;
    const reviewer = review ? new LazyReviewer(review, f.cert, f.key) : undefined;
    if (reviewer) this.reviewers.set(f.id, reviewer);
    const stream = new StreamRuntime({
      config: f.config,
      flagLimits: this.o.flagLimits,
      lifetimeMs: this.o.lifetimeMs,
      accessTtlMs: this.o.accessTtlMs,
      reviewer,
      metrics: this.o.metrics,
      log,
    });
    this.o.contexts.set(f.id, f.cert, f.key);
    this.o.registry.add(f.id, stream);
    this.o.metrics.configReloads.inc({ result: "applied" });
    log.info("stream added", { folder: f.id, serverNames: (f.config.serverNames ?? []).join(",") });
    return "added";
  }
}

/** A hub client made at the first review (most streams never see a user token), with the stream's identity. */
class LazyReviewer implements AccessReviewer {
  private client: AccessReviewClient | undefined;
  private cert: Buffer;
  private key: Buffer;
  private readonly hub: NonNullable<StreamPoolOptions["accessReview"]>;

  constructor(hub: NonNullable<StreamPoolOptions["accessReview"]>, cert: Buffer, key: Buffer) {
    this.hub = hub;
    this.cert = cert;
    this.key = key;
  }

  review(token: string, timeoutMs: number): Promise<AccessReviewResponse> {
    this.client ??= new AccessReviewClient({
      address: this.hub.address,
      tls: { caPem: this.hub.caPem, certPem: this.cert, keyPem: this.key },
      keepalive: this.hub.keepalive,
    });
    return this.client.review(token, timeoutMs);
  }

  /** A renewed certificate: the next review connects with it. */
  setIdentity(cert: Buffer, key: Buffer): void {
    if (cert.equals(this.cert) && key.equals(this.key)) return;
    this.close();
    this.cert = cert;
    this.key = key;
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}
