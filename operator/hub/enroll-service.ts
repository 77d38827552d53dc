// The Enroll RPC as an anonymous caller meets it: a few attempts per source address and minute,
// names checked before anything else, and one answer for every refusal that could tell which
// Devices exist or what state they are in. The precise reason goes to the operator's side only:
// a Warning Event on the Device when it exists, the log and devicestreams_hub_enrollments_total.
import { status as grpcStatus } from "@grpc/grpc-js";
import type { Device } from "../../api/v1alpha1.ts";
import { describeError } from "../../runtime/errors.ts";
import { KeyedRateLimiter } from "../../runtime/keyed-rate-limit.ts";
import { peerKey } from "../../runtime/peer-address.ts";
import type { EnrollRequest, EnrollResponse } from "../../transport/hub-service.ts";
import { type EnrollDeps, EnrollmentRefusal, enroll, HubError } from "./enrollment.ts";
import type { HubMetrics } from "./metrics.ts";

export const enrollmentRefused = {
  code: "DS_ENROLLMENT_REFUSED",
  message:
    "enrolment refused: the device, its token or its state does not allow it; ask an administrator to check " +
    "the Device's events",
} as const;

export interface EnrollRateLimit {
  /** Attempts per source address and minute, after the burst. */
  perMinute: number;
  burst: number;
}

/** Values of the `result` label besides the refusal reasons; a bounded set, never a name. */
type Result = "ok" | "rate_limited" | "invalid_name" | "bad_csr" | "unavailable" | "error";

const resultOfCode: Record<string, Result> = {
  DS_INVALID_NAME: "invalid_name",
  DS_BAD_CSR: "bad_csr",
  DS_HUB_UNAVAILABLE: "unavailable",
};

export class EnrollService {
  private readonly d: EnrollDeps;
  private readonly metrics: HubMetrics;
  private readonly perAddress: KeyedRateLimiter;
  // An Event per refusal would let anyone who knows a Device's name flood its namespace.
  private readonly eventsPerDevice = new KeyedRateLimiter({ perMinute: 1, burst: 3 });

  constructor(d: EnrollDeps, limit: EnrollRateLimit, metrics: HubMetrics) {
    this.d = d;
    this.metrics = metrics;
    this.perAddress = new KeyedRateLimiter(limit);
  }

  /** Answers one Enroll; throws a HubError with what the caller may be told. */
  async handle(peer: string, r: EnrollRequest): Promise<EnrollResponse> {
    const source = peerKey(peer);
    // As sent, cut short: the logger escapes it, and it may be anything.
    const device = `${r.namespace ?? ""}/${r.name ?? ""}`.slice(0, 300);
    if (!this.perAddress.take(source)) {
      const wait = Math.ceil(this.perAddress.retryAfterMs(source) / 1000);
      this.count("rate_limited");
      // Debug only: a flood must not turn into as many log lines (the metric counts it).
      this.d.log.debug("enrolment refused", { reason: "rate_limited", source, device });
      throw new HubError(
        grpcStatus.RESOURCE_EXHAUSTED,
        "DS_ENROLLMENT_RATE_LIMITED",
        `too many enrolment attempts from this address; retry in ${wait}s`,
      );
    }
    try {
      const out = await enroll(this.d, {
        token: r.token ?? "",
        namespace: r.namespace ?? "",
        name: r.name ?? "",
        csrPem: r.csrPem ?? "",
      });
      // A device that enrolled proved its token: it must not use up its address's attempts (many
      // devices behind one NAT enrol at once).
      this.perAddress.refund(source);
      this.count("ok");
      return { certificateChainPem: out.chainPem, caBundlePem: out.caPem };
    } catch (err) {
      if (err instanceof EnrollmentRefusal) {
        this.count(err.reason);
        this.d.log.warn("enrolment refused", { reason: err.reason, source, device, detail: err.message });
        if (err.device) this.recordEvent(err.device, err, source);
        throw new HubError(grpcStatus.PERMISSION_DENIED, enrollmentRefused.code, enrollmentRefused.message);
      }
      const e =
        err instanceof HubError
          ? err
          : new HubError(grpcStatus.INTERNAL, "DS_HUB_INTERNAL", "enrolment failed inside the hub; retry later", err);
      const result = resultOfCode[e.code] ?? "error";
      this.count(result);
      const cause = e.cause === undefined ? undefined : describeError(e.cause);
      this.d.log.warn("enrolment failed", { reason: result, source, device, detail: e.details, cause });
      throw e;
    }
  }

  private count(result: Result | EnrollmentRefusal["reason"]): void {
    this.metrics.enrollments.inc({ result });
  }

  private recordEvent(device: Device, refusal: EnrollmentRefusal, source: string): void {
    if (!this.eventsPerDevice.take(`${device.metadata.namespace}/${device.metadata.name}`)) return;
    this.d.events.record(
      device,
      "Warning",
      "EnrollmentRefused",
      "Enroll",
      `enrolment from ${source} refused (${refusal.reason}): ${refusal.message}`,
    );
  }
}
