import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import type { DeviceStream } from "../api/v1alpha1.ts";
import { createCertificateAuthority } from "../runtime/pki.ts";
import { tokenSha256 } from "../transport/credentials.ts";
import { buildPod, buildSecret, buildService, type RelaySettings } from "./relay-objects.ts";

const settings: RelaySettings = {
  image: "relay:1",
  imagePullPolicy: "IfNotPresent",
  clusterDomain: "example.internal",
  version: "1.2.3",
  requests: { cpu: "50m", memory: "64Mi" },
  limits: { memory: "256Mi" },
  allowedExposures: ["ClusterIP", "LoadBalancer"],
  max: { cpu: "1", memory: "2Gi" },
};

function stream(exposure: "ClusterIP" | "NodePort" | "LoadBalancer" = "ClusterIP"): DeviceStream {
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: { name: "st", namespace: "ns", uid: "aaaa-bbbb-cccc", creationTimestamp: new Date().toISOString() },
    spec: {
      device: "edge",
      service: "ssh",
      timeouts: { connect: "1m", idle: "5m", maxLifetime: "2h" },
      limits: { maxConnections: 7 },
      relay: { exposure, resources: { limits: { memory: "1Gi" } } },
    },
  };
}

describe("relay objects", () => {
  it("builds a Pod that runs the relay contract's command, locked down, with the stream's limits", () => {
    const pod = buildPod(stream(), settings);
    const spec = pod.spec as {
      activeDeadlineSeconds: number;
      containers: Array<{ command?: string[]; args: string[]; resources: unknown }>;
    };
    const c = spec.containers[0]!;
    assert.equal(c.command, undefined, "the image's entrypoint (the CLI with its Node.js flags) must run");
    assert.deepEqual(c.args, [
      "relay",
      "--listen=0.0.0.0:8443",
      "--metrics-listen=0.0.0.0:9090",
      "--config=/etc/devicestreams/relay/relay.json",
      "--tls-cert=/etc/devicestreams/relay/tls.crt",
      "--tls-key=/etc/devicestreams/relay/tls.key",
      "--idle-timeout=5m",
      "--max-lifetime=2h",
      "--max-connections=7",
    ]);
    assert.deepEqual(c.resources, { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "1Gi" } });
    assert.ok(spec.activeDeadlineSeconds > 7100 && spec.activeDeadlineSeconds <= 7200);
    assert.equal(pod.metadata.labels!["app.kubernetes.io/version"], "1.2.3");
    assert.match(pod.metadata.annotations!["devicestreams.io/config-hash"]!, /^[0-9a-f]{16}$/);
  });

  it("passes a bandwidth limit the relay can read, and none above 2^53-1 (found by fuzzing)", () => {
    const args = (bandwidthBytesPerSecond: number) => {
      const ds = stream();
      ds.spec.limits.bandwidthBytesPerSecond = bandwidthBytesPerSecond;
      return (buildPod(ds, settings).spec as { containers: Array<{ args: string[] }> }).containers[0]!.args;
    };
    assert.ok(args(1_000_000).includes("--bandwidth-limit=1000000"));
    assert.ok(args(2 ** 53 - 1).includes(`--bandwidth-limit=${2 ** 53 - 1}`));
    // The CRD admits int64; the relay refused "9007199254740992" and its Pod never started.
    for (const huge of [2 ** 53, 2 ** 63 - 1]) {
      assert.deepEqual(
        args(huge).filter((a) => a.startsWith("--bandwidth-limit")),
        [],
      );
    }
  });

  it("keeps metrics off Services that leave the cluster, and uses no ClusterIP inside it", () => {
    const inside = buildService(stream("ClusterIP"), settings);
    assert.equal(inside.spec!.clusterIP, "None");
    assert.deepEqual(
      inside.spec!.ports!.map((p) => p.name),
      ["grpc", "metrics"],
    );
    const outside = buildService(stream("LoadBalancer"), settings);
    assert.equal(outside.spec!.clusterIP, undefined);
    assert.deepEqual(
      outside.spec!.ports!.map((p) => p.name),
      ["grpc"],
    );
  });

  it("builds a Secret whose relay.json holds only digests of fresh per-role tokens", async () => {
    const ca = await createCertificateAuthority("test CA");
    const ds = stream();
    const [a, b] = [await buildSecret(ds, ca, settings), await buildSecret(ds, ca, settings)];
    const get = (s: typeof a, k: string) => Buffer.from(s.data![k]!, "base64").toString();
    assert.notEqual(get(a, "source-token"), get(b, "source-token"), "tokens are random");
    const config = JSON.parse(get(a, "relay.json"));
    assert.deepEqual(config.credentials, [
      { role: "source", sha256: tokenSha256(get(a, "source-token")) },
      { role: "destination", sha256: tokenSha256(get(a, "destination-token")) },
    ]);
    assert.ok(!get(a, "relay.json").includes(get(a, "source-token")));
    const cert = new X509Certificate(get(a, "tls.crt"));
    assert.match(cert.subjectAltName!, /DNS:st-relay\.ns\.svc\.example\.internal/);
    assert.ok(Date.parse(cert.validTo) > Date.parse(config.expiresAt), "certificate outlives the stream");
    assert.equal(a.metadata.name, "st-relay-aaaabbbbcc");
    assert.doesNotMatch(cert.subjectAltName!, /relay\.example\.com/);
    assert.equal(config.service, "ssh");
    assert.equal(config.services, undefined, "one service: relay.json as relays before several services read it");
  });

  it("relay.json of a stream of several services lists them, spec.service first", async () => {
    const ca = await createCertificateAuthority("test CA");
    const ds = stream();
    const config = (spec: Partial<DeviceStream["spec"]>) =>
      buildSecret({ ...ds, spec: { ...ds.spec, service: undefined, ...spec } }, ca, settings).then((s) =>
        JSON.parse(Buffer.from(s.data!["relay.json"]!, "base64").toString()),
      );
    const several = await config({ services: ["ssh", "web"] });
    assert.deepEqual([several.service, several.services], ["ssh", ["ssh", "web"]]);
    const named = await config({ service: "web", services: ["ssh", "web", "ftp"] });
    assert.deepEqual([named.service, named.services], ["web", ["web", "ssh", "ftp"]]);
  });

  it("binds a stream to its Device: no destination token anywhere, relay.json names the Device, the relay gets its CA", async () => {
    const ca = await createCertificateAuthority("test CA");
    const bound = { namespace: "ns", name: "edge", uid: "d-1", publicKeySHA256: "ab".repeat(32) };
    const hub = { ...settings, bindDevices: true };
    const secret = await buildSecret(stream(), ca, hub, bound);
    const get = (k: string) => Buffer.from(secret.data![k]!, "base64").toString();
    assert.deepEqual(Object.keys(secret.data!).sort(), ["ca.crt", "relay.json", "source-token", "tls.crt", "tls.key"]);
    const config = JSON.parse(get("relay.json"));
    assert.deepEqual(config.device, bound);
    assert.deepEqual(config.credentials, [{ role: "source", sha256: tokenSha256(get("source-token")) }]);
    const unenrolled = JSON.parse(
      Buffer.from(
        (await buildSecret(stream(), ca, hub, { namespace: "ns", name: "edge" })).data!["relay.json"]!,
        "base64",
      ).toString(),
    );
    assert.deepEqual(unenrolled.device, { namespace: "ns", name: "edge" });
    const pod = buildPod(stream(), hub);
    const container = (pod.spec as { containers: Array<{ args: string[] }> }).containers[0]!;
    assert.ok(container.args.includes("--device-ca=/etc/devicestreams/relay/ca.crt"), container.args.join(" "));
    const volume = (pod.spec as { volumes: Array<{ secret: { items: Array<{ key: string }> } }> }).volumes[0]!;
    assert.deepEqual(
      volume.secret.items.map((i) => i.key),
      ["relay.json", "tls.crt", "tls.key", "ca.crt"],
    );
  });

  it("lists the gateway's name for the stream in the relay certificate when a gateway domain is set", async () => {
    const ca = await createCertificateAuthority("test CA");
    const secret = await buildSecret(stream(), ca, { ...settings, gatewayDomain: "relay.example.com" });
    const cert = new X509Certificate(Buffer.from(secret.data!["tls.crt"]!, "base64"));
    assert.match(cert.subjectAltName!, /DNS:st\.ns\.relay\.example\.com/);
    assert.match(cert.subjectAltName!, /DNS:st-relay\.ns\.svc\b/);
  });

  it("makes the relay certificate its identity towards the hub, and says whether the source token is accepted", async () => {
    const ca = await createCertificateAuthority("test CA");
    const get = (s: { data?: Record<string, string> }, k: string) => Buffer.from(s.data![k]!, "base64").toString();
    const reviewed = { ...settings, accessReviewAddress: "devicestreams-hub.ops.svc:8444" };
    const off = await buildSecret(stream(), ca, reviewed);
    const cert = new X509Certificate(get(off, "tls.crt"));
    assert.match(cert.subjectAltName!, /URI:devicestreams:\/\/relay\/ns\/st\/aaaa-bbbb-cccc/);
    assert.ok(cert.checkIssued(new X509Certificate(ca.certPem)));
    // serverAuth for clients, clientAuth for the hub.
    assert.deepEqual(cert.keyUsage?.sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    assert.equal(JSON.parse(get(off, "relay.json")).acceptSourceToken, false);
    const ds = stream();
    ds.spec.access = { sourceToken: true };
    assert.equal(JSON.parse(get(await buildSecret(ds, ca, reviewed), "relay.json")).acceptSourceToken, true);
    // Without the hub nobody reviews users: the source token is the only way in.
    assert.equal(JSON.parse(get(await buildSecret(stream(), ca, settings), "relay.json")).acceptSourceToken, true);
  });

  it("points the relay at the hub for access reviews, with the CA mounted to trust it", () => {
    const spec = buildPod(stream(), { ...settings, accessReviewAddress: "devicestreams-hub.ops.svc:8444" }).spec as {
      containers: Array<{ args: string[] }>;
      volumes: Array<{ secret: { items: Array<{ key: string }> } }>;
    };
    const args = spec.containers[0]!.args;
    assert.ok(args.includes("--access-review-address=devicestreams-hub.ops.svc:8444"));
    assert.ok(args.includes("--access-review-ca=/etc/devicestreams/relay/ca.crt"));
    assert.deepEqual(
      spec.volumes[0]!.secret.items.map((i) => i.key),
      ["relay.json", "tls.crt", "tls.key", "ca.crt"],
      "never the tokens",
    );
  });
});
