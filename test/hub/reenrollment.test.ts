// Re-keying a Device against a real kube-apiserver, the operator under its own RBAC and its hub:
// removing spec.identity is refused however it is asked for, so no new enrolment token appears and
// nobody else can enrol as the device; re-enrolment happens only when an administrator sets
// spec.identity.reenroll, is recorded as Events, and swaps the key the hub accepts. Refusals are
// answered like any other (DS_ENROLLMENT_REFUSED); the Device's Event says why.
import assert from "node:assert/strict";
import { status as grpcStatus, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import { KubeApiError, objectPath } from "../../kube/client.ts";
import type { KubeList } from "../../kube/types.ts";
import { enrollmentRefused } from "../../operator/hub/enroll-service.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { defaultKeepalive } from "../../runtime/grpc-options.ts";
import { createCertificateRequest, publicKeySha256 } from "../../runtime/pki.ts";
import { HubClient } from "../../transport/hub-client.ts";
import { runCommand } from "../helpers/command.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, OperatorEnv } from "../operator/env.ts";
import { caPem, createDevice, enrollmentToken, getDevice, hubPort } from "./hub-env.ts";

interface EventObj {
  reason: string;
  type: string;
  note: string;
  regarding: { name: string };
}

describe("hub: re-enrolment is explicit", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  let address: string;
  let ca: string;

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator();
    address = `127.0.0.1:${await hubPort(op)}`;
    ca = (await caPem(env)).certPem;
  });

  after(async () => {
    await op?.stop();
    await env?.stop();
  });

  const client = (cert?: { certPem: string; keyPem: string }) =>
    new HubClient({ address, tls: { caPem: ca, ...cert }, keepalive: defaultKeepalive });
  const enrol = async (ns: string, name: string, token: string) => {
    const { csrPem, keyPem } = await createCertificateRequest("device");
    const hub = client();
    try {
      const res = await hub.enroll({ token, namespace: ns, name, csrPem });
      return { certPem: res.certificateChainPem!, keyPem, hash: publicKeySha256(csrPem) };
    } finally {
      hub.close();
    }
  };
  const eventWith = (ns: string, name: string, reason: string, note = /(?:)/) =>
    waitFor(`Event ${reason} for ${ns}/${name} matching ${note}`, async () =>
      (await env.admin.get<KubeList<EventObj>>(`/apis/events.k8s.io/v1/namespaces/${ns}/events`)).items.find(
        (e) => e.regarding.name === name && e.reason === reason && note.test(e.note),
      ),
    );
  /** Refused with the one generic answer; the Device's EnrollmentRefused Event names `reason` and its `code`. */
  const enrolRefused = async (ns: string, name: string, token: string, reason: string, code: RegExp) => {
    await assert.rejects(enrol(ns, name, token), (err: ServiceError) => {
      assert.deepEqual(
        [err.code, err.details],
        [grpcStatus.PERMISSION_DENIED, `${enrollmentRefused.code}: ${enrollmentRefused.message}`],
      );
      return true;
    });
    const refused = await eventWith(ns, name, "EnrollmentRefused", new RegExp(`\\(${reason}\\)`));
    assert.match(refused.note, code);
  };
  /** "open" when the hub accepts a control session with this certificate, else its refusal. */
  const session = async (cert: { certPem: string; keyPem: string }) => {
    const hub = client(cert);
    try {
      const call = hub.session();
      return await new Promise<string>((resolve) => {
        call.on("data", () => {
          resolve("open");
          call.cancel();
        });
        call.on("status", (s: StatusObject) => resolve(s.details));
        call.on("error", () => {});
        call.write({ hello: { agentVersion: "test" } });
      });
    } finally {
      hub.close();
    }
  };
  const kubectl = (args: string[]) =>
    runCommand("kubectl", [`--kubeconfig=${env.cluster.kubeconfigPath}`, ...args], { timeoutMs: 30_000 });

  it("removing an enrolled Device's identity is refused, so no new token lets another agent enrol as it", async () => {
    const ns = await env.namespace("no-rekey");
    await createDevice(env, ns, "pump");
    const first = await enrollmentToken(env, ns, "pump");
    const device = await enrol(ns, "pump", first);
    const path = objectPath(devices, ns, "pump");
    for (const [what, request] of [
      ["JSON patch", () => env.admin.jsonPatch(path, [{ op: "remove", path: "/spec/identity" }], "someone")],
      [
        "merge patch with null",
        () =>
          env.admin.request("PATCH", path, {
            body: { spec: { identity: null } },
            contentType: "application/merge-patch+json",
          }),
      ],
    ] as const) {
      await assert.rejects(
        request(),
        (err: unknown) =>
          err instanceof KubeApiError &&
          err.status === 422 &&
          /cannot be removed once the device has enrolled/.test(err.message),
        what,
      );
    }
    const r = await kubectl([
      "patch",
      "device",
      "pump",
      "-n",
      ns,
      "--type=json",
      "-p",
      '[{"op":"remove","path":"/spec/identity"}]',
    ]);
    assert.notEqual(r.code, 0, "kubectl patch removed the identity");
    assert.equal((await getDevice(env, ns, "pump")).spec.identity?.publicKeySHA256, device.hash);
    // The first token stays used up, and the enrolled key keeps working.
    await enrolRefused(ns, "pump", first, "already_enrolled", /already enrolled/);
    assert.equal(await session(device), "open");
  });

  it("spec.identity.reenroll: an Event naming who asked, a token bound to the current key, then the new key replaces it", async () => {
    const ns = await env.namespace("rekey");
    await createDevice(env, ns, "pump");
    const first = await enrollmentToken(env, ns, "pump");
    const old = await enrol(ns, "pump", first);

    const asked = await kubectl([
      "patch",
      "device",
      "pump",
      "-n",
      ns,
      "--type=merge",
      "-p",
      '{"spec":{"identity":{"reenroll":true}}}',
    ]);
    assert.equal(asked.code, 0, asked.stderr);
    const requested = await eventWith(ns, "pump", "ReenrollmentRequested");
    assert.equal(requested.type, "Warning");
    assert.match(requested.note, /spec\.identity\.reenroll set by field manager "kubectl-patch" at /);
    assert.match(requested.note, new RegExp(`current key \\(SHA-256 ${old.hash}\\) keeps working`));
    const second = await waitFor("a new token", async () => {
      const t = await enrollmentToken(env, ns, "pump");
      return t !== first ? t : undefined;
    });
    // Until the new agent enrols, the old key still works; the first token cannot re-enrol.
    assert.equal(await session(old), "open");
    await enrolRefused(ns, "pump", first, "token_invalid", /DS_ENROLLMENT_TOKEN_INVALID/);
    // A session the old key holds open is cut once the new key is enrolled.
    const holder = client(old);
    const live = holder.session();
    live.on("error", () => {});
    const cut = new Promise<StatusObject>((resolve) => live.on("status", resolve));
    await new Promise<void>((resolve) => {
      live.once("data", () => resolve());
      live.write({ hello: { agentVersion: "test" } });
    });

    const fresh = await enrol(ns, "pump", second);
    const ended = await cut;
    holder.close();
    assert.match(ended.details, /^DS_DEVICE_REVOKED: Device "pump" enrolled another key/);
    const after = await getDevice(env, ns, "pump");
    assert.deepEqual(after.spec.identity, { publicKeySHA256: fresh.hash }, "the new key, and the request cleared");
    const reenrolled = await eventWith(ns, "pump", "Reenrolled");
    assert.match(reenrolled.note, new RegExp(`${old.hash} replaced by ${fresh.hash}`));
    assert.equal(await session(fresh), "open");
    assert.match(await session(old), /^DS_DEVICE_REVOKED: /);
    // Used up: neither token enrols again.
    await enrolRefused(ns, "pump", second, "already_enrolled", /already enrolled/);
  });
});
