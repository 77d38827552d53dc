// Fuzz target: the path from a DeviceStream to a running relay. Any spec the CRD admits (its schema
// and its CEL rules, modelled here) and any operator policy must give either a refusal with a
// condition reason, or relay objects the relay accepts: relay.json that parseStreamConfig reads,
// flags the relay's option parser reads back to the spec's values, resources whose requests do not
// exceed their limits, and a relay that starts from them (in process, on loopback) and arms no
// timer Node cannot hold (a TimeoutOverflowWarning: Node fires such a timer after 1 ms).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { expiresAt, reasons } from "../../api/devicestream.ts";
import type { DeviceStream, ResourceAmounts } from "../../api/v1alpha1.ts";
import { compareQuantities } from "../../kube/quantity.ts";
import { buildPod, buildSecret, buildService, type RelaySettings } from "../../operator/relay-objects.ts";
import { exposures, relayRefusal } from "../../operator/relay-policy.ts";
import { WorkQueue } from "../../operator/workqueue.ts";
import { relayOptionSpecs } from "../../relay/contract.ts";
import { runRelay } from "../../relay/main.ts";
import { parseStreamConfig } from "../../relay/stream-config.ts";
import { formatDuration, parseDuration } from "../../runtime/duration.ts";
import { setLogLevel } from "../../runtime/log.ts";
import { readCommandLine } from "../../runtime/options.ts";
import { createCertificateAuthority, type KeyPairPem } from "../../runtime/pki.ts";
import { fuzz, fuzzTimeoutMs } from "./harness.ts";

// What the CRD's duration fields admit: its pattern, the CEL guard's digit bounds, a range, 32 characters.
const celGuard =
  /^(0*([0-9]{1,9}([.][0-9]+)?ms|[0-9]{1,7}([.][0-9]+)?s|[0-9]{1,5}([.][0-9]+)?m|[0-9]{1,4}([.][0-9]+)?h))+$/;
const second = 1000;
const hour = 3600 * second;

function durationText(minMs: number, maxMs: number): fc.Arbitrary<string> {
  return fc
    .tuple(fc.integer({ min: minMs, max: maxMs }), fc.nat(5), fc.nat(3))
    .map(([ms, form, zeros]) => {
      const text = [
        formatDuration(ms),
        `${ms}ms`,
        `${ms / second}s`,
        `${Math.floor(ms / 60_000)}m${ms % 60_000}ms`,
        `${(ms / hour).toFixed(3)}h`,
        `${"0".repeat(zeros)}${Math.round(ms / hour)}h`,
      ][form]!;
      return text;
    })
    .filter((t) => {
      if (t.length > 32 || !celGuard.test(t)) return false;
      const ms = parseDuration(t);
      // A margin at the bounds: CEL reads fractions to the nanosecond, parseDuration to the ms.
      return ms >= minMs + 1 && ms <= maxMs - 1;
    });
}

/** A quantity in one of the forms Kubernetes reads, from a whole number of base units. */
function quantity(units: "cpu" | "memory"): fc.Arbitrary<string> {
  const [min, max] = units === "cpu" ? ["1m", "64"] : ["16Mi", "256Gi"];
  const forms =
    units === "cpu"
      ? [
          fc.integer({ min: 1, max: 64_000 }).map((m) => `${m}m`),
          fc.integer({ min: 1, max: 64_000 }).map((m) => `${m / 1000}`),
          fc.integer({ min: 1, max: 64 }).map(String),
          fc.integer({ min: 1, max: 64_000 }).map((m) => `${m}e-3`),
          fc.integer({ min: 1, max: 64_000_000 }).map((u) => `${u}u`),
        ]
      : [
          fc.integer({ min: 16, max: 262_144 }).map((n) => `${n}Mi`),
          fc.integer({ min: 1, max: 256 }).map((n) => `${n}Gi`),
          fc.integer({ min: 16 * 2 ** 20, max: 2 ** 38 }).map(String),
          fc.integer({ min: 17, max: 274_877 }).map((n) => `${n}M`),
          fc.integer({ min: 17, max: 274 }).map((n) => `${n}e9`),
          fc.integer({ min: 16_385, max: 2 ** 28 }).map((n) => `${n}Ki`),
        ];
  return fc
    .oneof(...forms)
    .filter((q) => q.length <= 32 && compareQuantities(q, min) >= 0 && compareQuantities(q, max) <= 0);
}

const amounts = (): fc.Arbitrary<ResourceAmounts> =>
  fc.record({ cpu: quantity("cpu"), memory: quantity("memory") }, { requiredKeys: [] });

const int64 = fc.oneof(
  fc.integer({ min: 1, max: 10_000_000 }),
  fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(Number),
  fc.constantFrom(2 ** 53 - 1, 2 ** 53, 2 ** 63 - 1),
);

const dnsLabel = (max: number) => fc.stringMatching(new RegExp(`^[a-z0-9]([-a-z0-9]{0,${max - 2}}[a-z0-9])?$`));

const deviceStream = fc
  .record({
    name: fc.stringMatching(/^[a-z]([-a-z0-9]{0,55}[a-z0-9])?$/),
    namespace: dnsLabel(63),
    uid: fc.uuid(),
    createdAgoMs: fc.integer({ min: 0, max: hour }),
    device: fc.array(dnsLabel(30), { minLength: 1, maxLength: 4 }).map((parts) => parts.join(".")),
    service: dnsLabel(63),
    connect: durationText(second, 24 * hour),
    idle: durationText(second, 720 * hour),
    maxLifetime: durationText(second, 720 * hour),
    maxConnections: fc.integer({ min: 1, max: 10_000 }),
    bytesPerDay: fc.option(int64, { nil: undefined }),
    bandwidthBytesPerSecond: fc.option(int64, { nil: undefined }),
    exposure: fc.constantFrom(...exposures),
    resources: fc.option(fc.record({ requests: amounts(), limits: amounts() }, { requiredKeys: [] }), {
      nil: undefined,
    }),
  })
  // The CRD's cross-field rules: connect at most maxLifetime, each request at most its limit.
  .filter((s) => parseDuration(s.connect) <= parseDuration(s.maxLifetime))
  .filter((s) =>
    (["cpu", "memory"] as const).every((r) => {
      const req = s.resources?.requests?.[r];
      const lim = s.resources?.limits?.[r];
      return req === undefined || lim === undefined || compareQuantities(req, lim) <= 0;
    }),
  )
  .map((s) => ({
    // Younger than half its lifetime: the operator builds no relay for a stream that has ended.
    createdAgoMs: Math.min(s.createdAgoMs, parseDuration(s.maxLifetime) / 2),
    ds: {
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "DeviceStream",
      metadata: {
        name: s.name,
        namespace: s.namespace,
        uid: s.uid,
        // Set when the input is checked (from createdAgoMs), so that a kept input stays current.
        creationTimestamp: "",
      },
      spec: {
        device: s.device,
        service: s.service,
        timeouts: { connect: s.connect, idle: s.idle, maxLifetime: s.maxLifetime },
        limits: {
          maxConnections: s.maxConnections,
          ...(s.bytesPerDay === undefined ? {} : { bytesPerDay: s.bytesPerDay }),
          ...(s.bandwidthBytesPerSecond === undefined ? {} : { bandwidthBytesPerSecond: s.bandwidthBytesPerSecond }),
        },
        relay: { exposure: s.exposure, ...(s.resources ? { resources: s.resources } : {}) },
      },
    } satisfies DeviceStream,
  }));

// Mostly permissive, so that most streams get as far as a relay; sometimes strict, for the refusals.
const policy = fc.record({
  allowedExposures: fc.oneof(
    { weight: 3, arbitrary: fc.constant([...exposures]) },
    fc.subarray([...exposures], { minLength: 1 }),
  ),
  max: fc.oneof(
    { weight: 3, arbitrary: fc.constant({ cpu: "64", memory: "256Gi" }) },
    fc.record({ cpu: fc.constantFrom("500m", "1", "2"), memory: fc.constantFrom("256Mi", "2Gi") }),
  ),
  requests: fc.record(
    { cpu: fc.constantFrom("50m", "1"), memory: fc.constantFrom("64Mi", "1Gi") },
    { requiredKeys: [] },
  ),
  limits: fc.record(
    { cpu: fc.constantFrom("100m", "2"), memory: fc.constantFrom("128Mi", "4Gi") },
    { requiredKeys: [] },
  ),
});

/** Watches for a timer Node cannot hold while `f` runs (warnings are emitted on a later tick). */
async function noTimerOverflow<T>(what: string, f: () => Promise<T>): Promise<T> {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on("warning", onWarning);
  try {
    const out = await f();
    await new Promise((r) => setTimeout(r, 5));
    const overflow = warnings.find((w) => w.name === "TimeoutOverflowWarning");
    assert.equal(overflow, undefined, `${what} armed a timer Node fires after 1 ms: ${overflow?.message}`);
    return out;
  } finally {
    process.off("warning", onWarning);
  }
}

describe("fuzz: DeviceStream to relay", function () {
  this.timeout(fuzzTimeoutMs());
  let ca: KeyPairPem;
  let dir: string;
  before(async () => {
    ca = await createCertificateAuthority("fuzz operator CA");
    dir = mkdtempSync(join(tmpdir(), "ds-fuzz-relay-"));
    setLogLevel("error");
  });
  after(() => {
    setLogLevel("info");
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives a refusal or relay objects the relay accepts and runs with", () =>
    fuzz(
      "stream-to-relay",
      fc.record({ stream: deviceStream, policy }),
      async ({ stream, policy: p }) => {
        // A copy: the input must stay as drawn, to be kept in the corpus if it fails.
        const ds = structuredClone(stream.ds);
        const { createdAgoMs } = stream;
        // Seconds, as the API server writes it.
        ds.metadata.creationTimestamp = new Date(Math.floor((Date.now() - createdAgoMs) / 1000) * 1000).toISOString();
        const refusal = relayRefusal(ds, p);
        if (refusal) {
          assert.ok([reasons.exposureNotAllowed, reasons.resourcesNotAllowed].includes(refusal.reason as never));
          assert.match(refusal.message, /^spec\.relay\./, "a refusal names the field it refuses");
          return;
        }
        const settings: RelaySettings = {
          ...p,
          image: "relay:fuzz",
          imagePullPolicy: "IfNotPresent",
          clusterDomain: "cluster.local",
          version: "0.0.0-fuzz",
        };
        const now = Date.now();
        const pod = buildPod(ds, settings, now);
        buildService(ds, settings);
        const secret = await buildSecret(ds, ca, settings);
        const file = (key: string) => Buffer.from(secret.data![key]!, "base64").toString();
        const config = parseStreamConfig(file("relay.json"), "relay.json");
        assert.equal(config.service, ds.spec.service);
        assert.equal(Date.parse(config.expiresAt!), expiresAt(ds));

        const spec = pod.spec as {
          activeDeadlineSeconds: number;
          containers: Array<{ args: string[]; resources: { requests: ResourceAmounts; limits: ResourceAmounts } }>;
        };
        assert.ok(Number.isSafeInteger(spec.activeDeadlineSeconds) && spec.activeDeadlineSeconds >= 1);
        const { args, resources } = spec.containers[0]!;
        for (const r of ["cpu", "memory"] as const) {
          const req = resources.requests[r];
          const lim = resources.limits[r];
          if (req && lim) assert.ok(compareQuantities(req, lim) <= 0, `requests.${r} ${req} > limits.${r} ${lim}`);
        }
        // The relay's own parser reads the flags back to the spec's values.
        assert.equal(args[0], "relay");
        const flags = readCommandLine(relayOptionSpecs, args.slice(1), { name: "devicestreams relay" }).values;
        assert.equal(flags["idle-timeout"], parseDuration(ds.spec.timeouts.idle));
        assert.equal(flags["max-lifetime"], parseDuration(ds.spec.timeouts.maxLifetime));
        assert.equal(flags["max-connections"], ds.spec.limits.maxConnections);

        // The operator looks at the stream again at its end; the queue must wait that long.
        const queue = new WorkQueue();
        await noTimerOverflow("the operator's requeue", async () => queue.addAfter("k", expiresAt(ds) - now + 50));
        queue.shutdown();

        // The relay, from these files and flags, on loopback.
        writeFileSync(join(dir, "relay.json"), file("relay.json"));
        writeFileSync(join(dir, "tls.crt"), file("tls.crt"));
        writeFileSync(join(dir, "tls.key"), file("tls.key"));
        const local: Record<string, string> = {
          listen: "127.0.0.1:0",
          "metrics-listen": "127.0.0.1:0",
          config: join(dir, "relay.json"),
          "tls-cert": join(dir, "tls.crt"),
          "tls-key": join(dir, "tls.key"),
        };
        const argv = args.slice(1).map((a) => {
          const flag = /^--([^=]+)=/.exec(a)![1]!;
          return flag in local ? `--${flag}=${local[flag]}` : a;
        });
        const signals = { SIGTERM: process.listeners("SIGTERM"), SIGINT: process.listeners("SIGINT") };
        const relay = await noTimerOverflow("the relay", async () => (await runRelay(argv))!);
        try {
          const ready = await fetch(`http://127.0.0.1:${relay.metricsPort}/readyz`);
          assert.equal(ready.status, 200, "the relay is ready");
        } finally {
          await relay.stop();
          // runRelay installs its signal handlers for the life of its process; this process runs many.
          for (const [signal, before] of Object.entries(signals)) {
            for (const l of process.listeners(signal as NodeJS.Signals)) {
              if (!before.includes(l)) process.off(signal, l);
            }
          }
        }
      },
      { shortRuns: 25, runTimeoutMs: 20_000 },
    ));
});
