// The device side is the device: a stream made for an enrolled Device is bound to it, and its
// relay admits the device side only with that Device's certificate. A user holding everything in
// the stream's Secret, another Device's agent, an expired certificate and a replaced key all try
// to attach as the device; each is refused with its reason while the real device stays attached
// and an ssh session through it runs on.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { collectionPath, core, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import { deviceUri } from "../../runtime/device-certificate.ts";
import {
  createCertificateRequest,
  createCertificateRequestForKey,
  type KeyPairPem,
  signCertificateRequest,
} from "../../runtime/pki.ts";
import type { ClientTls } from "../../runtime/tls.ts";
import { type AttachCall, RelayClient } from "../../transport/relay-client.ts";
import type { RelayMessage } from "../../transport/relay-service.ts";
import { type HubAgent, startHubAgent } from "../helpers/hub-agent.ts";
import { pluginSsh } from "../helpers/plugin-ssh.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { System } from "../helpers/system.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, operatorNamespace, streams } from "../operator/env.ts";

const ns = "e2e-identity";
describe("end to end: the device side of a stream is its Device, proven by its certificate", function () {
  this.timeout(240_000);
  let sys: System;
  let sshd: Sshd;
  const agents: HubAgent[] = [];
  let extra = "";

  before(async function () {
    this.timeout(180_000);
    [sys, sshd] = await Promise.all([System.start({ replicas: 1, namespace: ns }), startSshd()]);
    for (const device of ["edge-1", "edge-2"]) {
      agents.push(await startHubAgent(sys, { namespace: ns, device, allow: [`ssh=${sshd.address}`] }));
    }
  });
  after(async () => {
    for (const a of agents) await a.stop();
    await sys?.stop();
    await sshd?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      for (const a of agents) console.error(`----- ${a.agent?.name} -----\n${a.agent?.logs.slice(-8_000)}`);
      console.error(`----- commands -----\n${extra.slice(-8_000)}`);
    }
  });

  const { ssh, sshWorks } = pluginSsh({
    sys: () => sys,
    sshd: () => sshd,
    namespace: ns,
    transcript: (text) => {
      extra += text;
    },
  });

  /** An Attach with these credentials: the DS_* detail it is refused with, or "attached". */
  const attachAs = async (address: string, serverName: string, tls: ClientTls, token = "") => {
    const relay = new RelayClient({ address, serverName, tls, keepalive: { timeMs: 10_000, timeoutMs: 5_000 } });
    try {
      const call: AttachCall = relay.attach(token, "impostor");
      return await new Promise<string>((resolve) => {
        call.on("data", (m: RelayMessage) => {
          if (m.streamInfo) {
            call.cancel();
            resolve("attached");
          }
        });
        call.on("error", (e: { details?: string }) => resolve(e.details ?? String(e)));
      });
    } finally {
      relay.close();
    }
  };

  it("refuses the Secret's holder, another Device, an expired certificate and a replaced key; the device carries on", async () => {
    const edge1 = await sys.env.admin.get<Device>(objectPath(devices, ns, "edge-1"));
    await sys.env.admin.create(
      collectionPath(streams, ns),
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        metadata: { name: "id-ssh" },
        spec: { device: "edge-1", service: "ssh" },
      },
      "tests",
    );
    await waitFor(
      "the stream to be connected",
      async () =>
        (await sys.env.admin.get<DeviceStream>(objectPath(streams, ns, "id-ssh"))).status?.phase === "Connected",
      60_000,
    );
    const relay = await sys.relayOf(ns, "id-ssh");
    const key = edge1.spec.identity!.publicKeySHA256!;
    assert.deepEqual(JSON.parse(relay.value("relay.json")).device, {
      namespace: ns,
      name: "edge-1",
      uid: edge1.metadata.uid,
      publicKeySHA256: key,
    });
    assert.deepEqual(relay.stream.status?.device, { uid: edge1.metadata.uid, publicKeySHA256: key });
    const secret = await sys.env.admin.get<Secret>(
      objectPath(core.secrets, ns, relay.stream.status!.relay!.credentialsSecret!),
    );
    assert.equal(secret.data!["destination-token"], undefined, "no destination token where users read");

    // An ssh session through the real device that outlives every attempt below.
    await sshWorks("id-ssh");
    const long = ssh("id-ssh", "sleep 8; echo still-here");

    const caPem = relay.value("ca.crt");
    const caSecret = await sys.env.admin.get<Secret>(objectPath(core.secrets, operatorNamespace, "devicestreams-ca"));
    const decode = (k: string) => Buffer.from(caSecret.data![k]!, "base64").toString();
    const ca: KeyPairPem = { certPem: decode("tls.crt"), keyPem: decode("tls.key") };
    const state = (device: string) => join(sys.env.cluster.dataDir, `agent-${device}`, "state");
    const edge1Key = readFileSync(join(state("edge-1"), "device.key"), "utf8");
    const uri = deviceUri({ namespace: ns, name: "edge-1", uid: edge1.metadata.uid! });
    const attempt = (tls: Omit<ClientTls, "caPem">, token = "") =>
      attachAs(relay.address, relay.serverName, { caPem, ...tls }, token);

    // Everything a user may read in the stream's Secret: the source token, the relay's own pair.
    assert.match(await attempt({}, relay.value("source-token")), /^DS_DEVICE_IDENTITY_REQUIRED: /);
    assert.match(
      await attempt({ certPem: relay.value("tls.crt"), keyPem: relay.value("tls.key") }),
      /^DS_DEVICE_CERT_INVALID: .*names no device/,
    );
    // Another Device's agent, with its own valid certificate.
    assert.match(
      await attempt({
        certPem: readFileSync(join(state("edge-2"), "device.crt")),
        keyPem: readFileSync(join(state("edge-2"), "device.key")),
      }),
      /^DS_DEVICE_IDENTITY_MISMATCH: the certificate names Device "edge-2"/,
    );
    // The right Device and key, but expired.
    const csr = await createCertificateRequestForKey(`${ns}/edge-1`, edge1Key);
    const expired = await signCertificateRequest(ca, csr, {
      commonName: `${ns}/edge-1`,
      uris: [uri],
      usage: "client",
      validityMs: 1,
    });
    await new Promise((r) => setTimeout(r, 1_100));
    assert.match(await attempt({ certPem: expired, keyPem: edge1Key }), /^DS_DEVICE_CERT_INVALID: .*it expired/);
    // The right Device, signed by the CA, but not the key it enrolled (a stolen old key, say).
    const other = await createCertificateRequest(`${ns}/edge-1`);
    const rekeyed = await signCertificateRequest(ca, other.csrPem, {
      commonName: `${ns}/edge-1`,
      uris: [uri],
      usage: "client",
      validityMs: 3600_000,
    });
    assert.match(
      await attempt({ certPem: rekeyed, keyPem: other.keyPem }),
      /^DS_DEVICE_IDENTITY_MISMATCH: the certificate's key is not the one/,
    );

    const r = await long;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "still-here\n");
    await sshWorks("id-ssh");
    assert.doesNotMatch(agents[0]!.agent!.logs, /relay session lost/, "the real device was never displaced");
  });
});
