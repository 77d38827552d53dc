// When the API server refuses a relay Secret, Service or Pod, the stream says so at once: the
// failure becomes its RelayReady reason (RelayInvalid, RelayForbidden, RelayAPIError) with the
// API server's own words, and the operator waits before writing again. The wait is remembered here
// rather than left to the work queue because the stream's own status write wakes its reconcile at
// once: without it every status change would be one more attempt.
import { reasons } from "../../api/devicestream.ts";
import { KubeApiError } from "../../kube/client.ts";

export type RelayObjectKind = "Secret" | "Service" | "Pod" | "NetworkPolicy";

/** A write of a relay object that the API server did not take. */
export class RelayWriteError extends Error {
  readonly kind: RelayObjectKind;
  readonly objectName: string;
  readonly apiError: KubeApiError;
  constructor(kind: RelayObjectKind, objectName: string, apiError: KubeApiError) {
    super(`cannot write the relay ${kind} ${objectName}: ${apiError.message}`, { cause: apiError });
    this.kind = kind;
    this.objectName = objectName;
    this.apiError = apiError;
  }
}

/** Runs one write; an API error becomes a RelayWriteError naming the object. */
export async function writing<T>(kind: RelayObjectKind, name: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof KubeApiError) throw new RelayWriteError(kind, name, err);
    throw err;
  }
}

export interface RelayFailure {
  uid: string;
  reason: string;
  /** What happened, in the API server's words: for RelayReady and for a later ConnectTimeout. */
  summary: string;
  /** `summary` plus what to do and when the operator tries again. */
  message: string;
  attempt: number;
  retryAt: number;
}

const maxCause = 800;

/** The API server's words, without our "PATCH /api/v1/...: 422 " prefix. */
function cause(err: KubeApiError): string {
  const words = err.message.replace(/^[A-Z]+ \S+: (\d{3} )?/, "");
  return words.length > maxCause ? `${words.slice(0, maxCause)}…` : words;
}

/**
 * Invalid (422, 400) and forbidden (403: RBAC, a ResourceQuota, a LimitRange, an admission policy)
 * do not pass with time: someone must fix them, so the retries are slow. Anything else (5xx, 429,
 * a failing webhook, no answer) is retried with a quicker backoff.
 */
export function classify(err: KubeApiError): { reason: string; permanent: boolean } {
  if (err.status === 422 || err.status === 400) return { reason: reasons.relayInvalid, permanent: true };
  if (err.status === 403) return { reason: reasons.relayForbidden, permanent: true };
  return { reason: reasons.relayAPIError, permanent: false };
}

export interface RelayFailureTimings {
  /** First wait after a permanent failure, doubled each time up to `permanentMaxMs`. */
  permanentInitialMs: number;
  permanentMaxMs: number;
  transientInitialMs: number;
  transientMaxMs: number;
}

export const defaultTimings: RelayFailureTimings = {
  permanentInitialMs: 5_000,
  permanentMaxMs: 120_000,
  transientInitialMs: 1_000,
  transientMaxMs: 60_000,
};

/** The last failure of each stream's relay, by stream key; entries of another UID are ignored. */
export class RelayFailures {
  private readonly byKey = new Map<string, RelayFailure>();
  private readonly timings: RelayFailureTimings;

  constructor(timings: RelayFailureTimings = defaultTimings) {
    this.timings = timings;
  }

  get(key: string, uid: string): RelayFailure | undefined {
    const f = this.byKey.get(key);
    return f?.uid === uid ? f : undefined;
  }

  /** True while the last failure's wait has not run out: do not write yet. */
  waiting(key: string, uid: string, now: number): boolean {
    const f = this.get(key, uid);
    return f !== undefined && now < f.retryAt;
  }

  record(key: string, uid: string, err: RelayWriteError, now: number): RelayFailure {
    const { reason, permanent } = classify(err.apiError);
    const previous = this.get(key, uid);
    const attempt = previous?.reason === reason ? previous.attempt + 1 : 1;
    const t = this.timings;
    const [initial, max] = permanent
      ? [t.permanentInitialMs, t.permanentMaxMs]
      : [t.transientInitialMs, t.transientMaxMs];
    const waitMs = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20));
    const object = `relay ${err.kind} ${err.objectName}`;
    const again = `the operator tries again in ${Math.round(waitMs / 1000)}s (attempt ${attempt})`;
    let summary: string;
    let message: string;
    if (reason === reasons.relayInvalid) {
      summary = `the API server refused the ${object} as invalid: ${cause(err.apiError)}`;
      message =
        `${summary}. It is built from this stream's spec.relay, the operator's --relay-* flags and the ` +
        `namespace's LimitRange defaults: fix the one at fault; ${again}`;
    } else if (reason === reasons.relayForbidden) {
      summary = `the API server forbade the ${object}: ${cause(err.apiError)}`;
      message =
        `${summary}. A ResourceQuota, LimitRange, admission policy or the operator's RBAC refused it: ` +
        `fix that; ${again}`;
    } else {
      summary = `the API server did not take the ${object}: ${cause(err.apiError)}`;
      message = `${summary}; retrying with backoff: ${again}`;
    }
    const failure = { uid, reason, summary, message, attempt, retryAt: now + waitMs };
    this.byKey.set(key, failure);
    return failure;
  }

  clear(key: string): void {
    this.byKey.delete(key);
  }
}
