// The hub's RelayAccess/Review against a real API server: only a relay certificate of the
// operator's CA is answered, and only about the stream it names; the answer is the API server's
// (TokenReview, then SubjectAccessReview for the verb `connect` on that one DeviceStream).
import assert from "node:assert/strict";
import type { ServiceError } from "@grpc/grpc-js";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import type { KubeObject } from "../../kube/types.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { defaultKeepalive } from "../../runtime/grpc-options.ts";
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from "../../runtime/pki.ts";
import { relayUri } from "../../runtime/relay-identity.ts";
import { AccessReviewClient } from "../../transport/access-review-service.ts";
import { OperatorEnv } from "../operator/env.ts";
import { caPem, hubPort } from "./hub-env.ts";

describe("hub: access reviews for relays", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  let ca: KeyPairPem;
  let port: number;
  const clients: AccessReviewClient[] = [];
  const ns = "reviews";
  const streams: Record<string, DeviceStream> = {};

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator();
    await env.namespace(ns);
    for (const name of ["a", "b"]) streams[name] = await env.createStream(ns, name, { device: "d", service: "ssh" });
    // alice may connect to stream b only; bob to nothing.
    await env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "connect-b", namespace: ns },
      rules: [
        { apiGroups: ["devicestreams.io"], resources: ["devicestreams"], resourceNames: ["b"], verbs: ["connect"] },
      ],
    } as KubeObject);
    await env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "connect-b", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "connect-b" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "alice@example.com" }],
    } as KubeObject);
    const pem = await caPem(env);
    ca = { certPem: pem.certPem, keyPem: pem.keyPem };
    port = await hubPort(op);
  });
  after(async () => {
    for (const c of clients) c.close();
    await op?.stop();
    await env?.stop();
  });

  const relayCert = (issuer: KeyPairPem, uris: string[]) =>
    issueCertificate(issuer, { commonName: "relay", uris, usage: "both", validityMs: 3600_000 });
  const relayOf = (name: string) =>
    relayCert(ca, [relayUri({ namespace: ns, name, uid: streams[name]!.metadata.uid! })]);
  const client = (cert?: KeyPairPem) => {
    const c = new AccessReviewClient({
      address: `127.0.0.1:${port}`,
      tls: { caPem: ca.certPem, ...(cert ? { certPem: cert.certPem, keyPem: cert.keyPem } : {}) },
      keepalive: defaultKeepalive,
    });
    clients.push(c);
    return c;
  };
  const refusal = async (p: Promise<unknown>, pattern: RegExp) => {
    await assert.rejects(p, (err: ServiceError) => {
      assert.match(err.details, pattern);
      return true;
    });
  };
  const alice = () => env.cluster.userToken("alice@example.com");

  it("answers a relay about its own stream: allowed, or denied naming the user and the missing permission", async () => {
    const b = client(await relayOf("b"));
    const ok = await b.review(alice(), 10_000);
    assert.equal(ok.allowed, true);
    assert.equal(ok.user, "alice@example.com");
    assert.ok(!ok.code && !ok.message);
    const bob = await b.review(env.cluster.userToken("bob@example.com"), 10_000);
    assert.equal(bob.allowed, false);
    assert.equal(bob.code, "DS_USER_FORBIDDEN");
    assert.match(
      bob.message!,
      /^user "bob@example\.com" may not connect to devicestreams\/b in namespace "reviews" \(RBAC: verb connect on devicestreams\.devicestreams\.io\)/,
    );
    assert.doesNotMatch(bob.message!, /system:authenticated/, "no groups in the answer");
    const forged = await b.review("not-a-token", 10_000);
    assert.equal(forged.code, "DS_USER_UNAUTHENTICATED");
    assert.match(forged.message!, /did not accept your token/);
  });

  it("a relay's certificate limits it to its stream: alice, allowed on b, is denied on a", async () => {
    const a = await client(await relayOf("a")).review(alice(), 10_000);
    assert.equal(a.allowed, false);
    assert.match(a.message!, /devicestreams\/a in namespace "reviews"/);
  });

  it("refuses callers without a certificate, with a device certificate, or another CA's", async () => {
    await refusal(client().review(alice(), 10_000), /^DS_ACCESS_REVIEW_REFUSED: .*present the relay certificate/);
    const device = await relayCert(ca, [`devicestreams://device/${ns}/d/${streams.a!.metadata.uid}`]);
    await refusal(client(device).review(alice(), 10_000), /^DS_ACCESS_REVIEW_REFUSED: .*names no relay/);
    const other = await createCertificateAuthority("not the operator");
    const foreign = await relayCert(other, [relayUri({ namespace: ns, name: "b", uid: streams.b!.metadata.uid! })]);
    // The hub's TLS asks for client certificates of its CA: another CA's fails the handshake or the check.
    await assert.rejects(client(foreign).review(alice(), 10_000));
  });

  it("refuses the relay of a stream that is gone, even when a new one has its name", async () => {
    const stale = await relayCert(ca, [relayUri({ namespace: ns, name: "b", uid: "0000-stale-uid" })]);
    await refusal(client(stale).review(alice(), 10_000), /^DS_ACCESS_REVIEW_REFUSED: DeviceStream "b" .* is gone/);
  });
});
