// Answers a relay's question "may the holder of this Kubernetes token connect to my stream?".
// The relay proves which stream it serves with its certificate (runtime/relay-identity.ts), so
// it can never ask about another stream; the API server says who the token is (TokenReview) and
// whether that user may `connect` to devicestreams/<name> (SubjectAccessReview). An allowed
// connection is recorded on the stream: status.lastConnection, and an Event per new user.
import { status as grpcStatus } from "@grpc/grpc-js";
import { accessFieldManager } from "../../api/constants.ts";
import { type DeviceStream, deviceStreamResource } from "../../api/v1alpha1.ts";
import { isNotFound, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import type { Logger } from "../../runtime/log.ts";
import type { KeyPairPem } from "../../runtime/pki.ts";
import { type RelayIdentity, relayFromCertificate } from "../../runtime/relay-identity.ts";
import type { AccessReviewResponse } from "../../transport/access-review-service.ts";
import type { EventRecorder } from "../events.ts";
import { HubError } from "./enrollment.ts";

/** An Event per user and stream at most this often; lastConnection at most this often per user. */
const eventEveryMs = 10 * 60_000;
const recordEveryMs = 5_000;
/** (stream, user) pairs remembered for that; the oldest is forgotten first. */
const maxRemembered = 10_000;

export interface AccessReviewDeps {
  client: KubeClient;
  streams: Informer<DeviceStream>;
  events: EventRecorder;
  ca: KeyPairPem;
  log: Logger;
  now?: () => number;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  error?: string;
}

export class AccessReviews {
  private readonly d: AccessReviewDeps;
  /** `${stream uid}/${user}` → when last recorded as an Event, and as lastConnection. */
  private readonly eventAt = new Map<string, number>();
  private readonly recordedAt = new Map<string, number>();

  constructor(d: AccessReviewDeps) {
    this.d = d;
  }

  /** The relay the caller's certificate names; a HubError for anyone else. */
  async relay(certDer: Buffer | undefined): Promise<RelayIdentity> {
    if (!certDer) {
      throw new HubError(
        grpcStatus.UNAUTHENTICATED,
        "DS_ACCESS_REVIEW_REFUSED",
        "access reviews are for relays: present the relay certificate the operator issued",
      );
    }
    try {
      return await relayFromCertificate(certDer, this.d.ca.certPem);
    } catch (err) {
      throw new HubError(grpcStatus.UNAUTHENTICATED, "DS_ACCESS_REVIEW_REFUSED", (err as Error).message);
    }
  }

  async review(relay: RelayIdentity, token: string): Promise<AccessReviewResponse> {
    const ds = await this.stream(relay);
    const where = `devicestreams/${relay.name} in namespace "${relay.namespace}"`;
    if (!token) return denied("DS_AUTH_MISSING", "no Kubernetes token was presented");
    let who: TokenReviewStatus;
    try {
      const tr = await this.d.client.create<{ status?: TokenReviewStatus }>(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
        accessFieldManager,
      );
      who = tr.status ?? {};
    } catch (err) {
      throw unavailable("complete the TokenReview", err);
    }
    const user = who.user?.username;
    if (!who.authenticated || !user) {
      return denied(
        "DS_USER_UNAUTHENTICATED",
        `the Kubernetes API server did not accept your token${who.error ? ` (${who.error})` : ""}; log in again (refresh your kubeconfig's credentials) and connect again`,
      );
    }
    let allowed: boolean;
    try {
      const sar = await this.d.client.create<{ status?: { allowed?: boolean } }>(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user,
            uid: who.user?.uid,
            groups: who.user?.groups,
            extra: who.user?.extra,
            resourceAttributes: {
              namespace: relay.namespace,
              verb: "connect",
              group: deviceStreamResource.group,
              resource: deviceStreamResource.plural,
              name: relay.name,
            },
          },
        },
        accessFieldManager,
      );
      allowed = sar.status?.allowed === true;
    } catch (err) {
      throw unavailable("complete the SubjectAccessReview", err);
    }
    if (!allowed) {
      // Names the user and the missing permission, never the user's groups.
      return {
        allowed: false,
        user,
        code: "DS_USER_FORBIDDEN",
        message: `user "${user}" may not connect to ${where} (RBAC: verb connect on ${deviceStreamResource.plural}.${deviceStreamResource.group}); ask your cluster admin to bind the devicestreams-user ClusterRole in namespace "${relay.namespace}"`,
      };
    }
    this.attribute(ds, user);
    return { allowed: true, user, code: "", message: "" };
  }

  /** The stream the relay serves: the same UID, not being deleted. */
  private async stream(relay: RelayIdentity): Promise<DeviceStream> {
    let ds = this.d.streams.get(relay.namespace, relay.name);
    if (ds?.metadata.uid !== relay.uid) {
      // The cache may lag a just-created stream: ask the API server before refusing.
      try {
        ds = await this.d.client.get<DeviceStream>(
          objectPath({ ...deviceStreamResource }, relay.namespace, relay.name),
        );
      } catch (err) {
        if (!isNotFound(err)) throw unavailable("read the DeviceStream", err);
        ds = undefined;
      }
    }
    if (!ds || ds.metadata.uid !== relay.uid || ds.metadata.deletionTimestamp) {
      throw new HubError(
        grpcStatus.PERMISSION_DENIED,
        "DS_ACCESS_REVIEW_REFUSED",
        `DeviceStream "${relay.name}" in namespace "${relay.namespace}" that this relay served is gone; open a new stream`,
      );
    }
    return ds;
  }

  /** Who connected: status.lastConnection (its own field manager) and an Event per new user. */
  private attribute(ds: DeviceStream, user: string): void {
    const now = (this.d.now ?? Date.now)();
    const key = `${ds.metadata.uid}/${user}`;
    if (remember(this.eventAt, key, now, eventEveryMs)) {
      this.d.events.record(ds, "Normal", "UserConnected", "Connect", `user "${user}" connected through the relay`);
    }
    if (!remember(this.recordedAt, key, now, recordEveryMs)) return;
    const body = {
      apiVersion: ds.apiVersion,
      kind: ds.kind,
      // The UID makes it fail rather than mark a newer stream of the same name.
      metadata: { name: ds.metadata.name, namespace: ds.metadata.namespace, uid: ds.metadata.uid },
      status: { lastConnection: { user, time: new Date(now).toISOString().replace(/\.\d+Z$/, "Z") } },
    };
    const path = objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!, "status");
    this.d.client.apply(path, body, accessFieldManager).catch((err: Error) => {
      if (!isNotFound(err))
        this.d.log.warn("could not record the stream's last connection", { path, error: err.message });
    });
  }
}

/** True (and remembered) when `key` was not seen within `everyMs`; bounded, oldest forgotten first. */
function remember(seen: Map<string, number>, key: string, now: number, everyMs: number): boolean {
  const at = seen.get(key);
  if (at !== undefined && now - at < everyMs) return false;
  seen.delete(key);
  while (seen.size >= maxRemembered) seen.delete(seen.keys().next().value!);
  seen.set(key, now);
  return true;
}

function denied(code: string, message: string): AccessReviewResponse {
  return { allowed: false, user: "", code, message };
}

function unavailable(what: string, err: unknown): HubError {
  return new HubError(
    grpcStatus.UNAVAILABLE,
    "DS_ACCESS_REVIEW_UNAVAILABLE",
    `the operator could not ${what} with the Kubernetes API server; retry in a moment`,
    err,
  );
}
