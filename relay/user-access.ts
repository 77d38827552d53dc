// Users connect with their own Kubernetes token: the relay, which holds no Kubernetes
// credentials, asks the operator (TokenReview + SubjectAccessReview for the verb `connect` on its
// DeviceStream) and reuses each answer for at most 10 s. Tokens are kept only as SHA-256 keys.
import { createHash } from "node:crypto";
import { type Metadata, status } from "@grpc/grpc-js";
import { metadataKeys } from "../proto/metadata.ts";
import { type ErrorCode, isErrorCode } from "../runtime/error-codes.ts";
import { errorDetail } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { LogSampler } from "../runtime/log-sampler.ts";
import type { AccessReviewResponse } from "../transport/access-review-service.ts";
import type { ByteCall } from "./calls.ts";
import type { RelayMetrics } from "./metrics.ts";

/** Longest an answer may be reused: a revoked token or RoleBinding is refused within this. */
export const maxAccessTtlMs = 10_000;

export type UserAccessResult =
  | { ok: true; user: string }
  | { ok: false; code: ErrorCode; message: string; grpcCode: status };

export interface AccessReviewer {
  review(token: string, timeoutMs: number): Promise<AccessReviewResponse>;
}

interface Entry {
  result: UserAccessResult;
  expiresAt: number;
}

/** Answers by token digest, each for at most `ttlMs`; the oldest entry goes when full. */
export class AccessCache {
  private readonly entries = new Map<string, Entry>();
  readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(ttlMs: number, maxEntries = 1024) {
    this.ttlMs = Math.min(Math.max(ttlMs, 0), maxAccessTtlMs);
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now: number): UserAccessResult | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (now >= e.expiresAt) {
      this.entries.delete(key);
      return undefined;
    }
    return e.result;
  }

  set(key: string, result: UserAccessResult, now: number): void {
    if (this.ttlMs === 0) return;
    this.entries.delete(key);
    // Insertion order is age order: the first key is the oldest answer.
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { result, expiresAt: now + this.ttlMs });
  }
}

export const tokenKey = (token: string) => createHash("sha256").update(token).digest("hex");

/** Users with a label of their own in the connections counter; later ones count as `other`. */
export const maxUserLabels = 50;
/** Distinct tokens reviewed at once by one relay. */
export const maxReviewsInFlight = 16;

export interface UserAccessOptions {
  /** Undefined: the relay cannot review tokens (static stream) and says so. */
  reviewer?: AccessReviewer;
  ttlMs: number;
  stream: () => string;
  metrics: RelayMetrics;
  log: Logger;
  reviewTimeoutMs?: number;
  now?: () => number;
}

export function presentsKubernetesToken(metadata: Metadata): boolean {
  return metadata.get(metadataKeys.kubernetesToken).length > 0;
}

export class UserAccess {
  private readonly o: UserAccessOptions;
  private readonly cache: AccessCache;
  /** One review per token at a time: a burst of connections from one user asks once. */
  private readonly inflight = new Map<string, Promise<UserAccessResult>>();
  private readonly labelled = new Set<string>();
  private readonly refusals = new LogSampler({ intervalMs: 10_000 });

  constructor(o: UserAccessOptions) {
    this.o = o;
    this.cache = new AccessCache(o.ttlMs);
  }

  /** The user's name when the call may go on; otherwise the call is refused here. */
  async admit(call: ByteCall): Promise<string | undefined> {
    const raw = call.metadata.get(metadataKeys.kubernetesToken)[0];
    const result = await this.check(typeof raw === "string" ? raw : "");
    if (result.ok) {
      this.o.metrics.userConnections.inc({ user: this.label(result.user) });
      return result.user;
    }
    this.o.metrics.authFailures.inc({ role: "source", reason: result.code });
    const suppressed = this.refusals.take(result.code);
    if (suppressed !== undefined) {
      // The message names the user, never the token.
      this.o.log.warn("call refused", {
        role: "source",
        reason: result.code,
        detail: result.message,
        peer: call.getPeer(),
        suppressed: suppressed || undefined,
      });
    }
    call.fail(result.grpcCode, errorDetail(result.code, result.message));
    return undefined;
  }

  async check(token: string): Promise<UserAccessResult> {
    if (!this.o.reviewer) {
      return refused(
        "DS_USER_TOKEN_UNSUPPORTED",
        "this relay does not review Kubernetes credentials (it has no --access-review-address); present the stream's source token instead",
      );
    }
    if (!token) return refused("DS_AUTH_MISSING", "the Kubernetes token is empty; check the kubeconfig's credentials");
    const key = tokenKey(token);
    const now = (this.o.now ?? Date.now)();
    const cached = this.cache.get(key, now);
    if (cached) return cached;
    let pending = this.inflight.get(key);
    // Anyone who reaches the port can send a fresh token per call, each one a TokenReview for the
    // API server: a bounded number are asked at once, the rest refused until answers come back.
    if (!pending && this.inflight.size >= maxReviewsInFlight) {
      return {
        ok: false,
        grpcCode: status.RESOURCE_EXHAUSTED,
        code: "DS_ACCESS_REVIEW_UNAVAILABLE",
        message: `the relay of stream ${this.o.stream()} is already asking the operator about ${maxReviewsInFlight} other credentials; this is not a permission problem: retry in a moment`,
      };
    }
    if (!pending) {
      pending = this.review(this.o.reviewer, token, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async review(reviewer: AccessReviewer, token: string, key: string): Promise<UserAccessResult> {
    let answer: AccessReviewResponse;
    try {
      answer = await reviewer.review(token, this.o.reviewTimeoutMs ?? 5_000);
    } catch (err) {
      // Not cached: the next connection asks again.
      this.o.log.warn("access review failed", { reason: (err as Error).message });
      return {
        ok: false,
        grpcCode: status.UNAVAILABLE,
        code: "DS_ACCESS_REVIEW_UNAVAILABLE",
        message: `the relay of stream ${this.o.stream()} could not ask the operator whether you may connect (${(err as Error).message}); this is not a permission problem: retry in a moment`,
      };
    }
    const result: UserAccessResult = answer.allowed
      ? { ok: true, user: answer.user ?? "" }
      : {
          ok: false,
          grpcCode: status.PERMISSION_DENIED,
          // A bounded label: an unknown code (a newer operator's) counts as the generic refusal.
          code: answer.code && isErrorCode(answer.code) ? answer.code : "DS_USER_FORBIDDEN",
          message: answer.message || "the operator refused the connection",
        };
    if (result.ok) this.o.log.debug("user reviewed", { user: result.user });
    this.cache.set(key, result, (this.o.now ?? Date.now)());
    return result;
  }

  /** Bounded label values: the first users by name, everyone after as `other`. */
  private label(user: string): string {
    if (this.labelled.has(user)) return user;
    if (this.labelled.size >= maxUserLabels) return "other";
    this.labelled.add(user);
    return user;
  }
}

function refused(code: ErrorCode, message: string): UserAccessResult {
  return { ok: false, grpcCode: status.UNAUTHENTICATED, code, message };
}
