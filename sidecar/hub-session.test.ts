import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClientDuplexStream, status } from "@grpc/grpc-js";
import { Backoff } from "../runtime/backoff.ts";
import { createRegistry } from "../runtime/http-endpoints.ts";
import { createCertificateAuthority, issueCertificate } from "../runtime/pki.ts";
import { FakeStream, quietLog, tick } from "../test/helpers/fake-streams.ts";
import type { AgentControl, EnrollRequest, EnrollResponse, HubControl } from "../transport/hub-service.ts";
import { AllowList } from "./allow-list.ts";
import { HubSession, type HubSessionOptions } from "./hub-session.ts";
import { agentMetrics } from "./metrics.ts";

const untrusted =
  "No connection established. Last error: Error: unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca";
const wrongName =
  "No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: Host: hub.example. is not in the cert's altnames: DNS:hub";

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("hub session", () => {
  let dir: string;
  let identity: { certPem: string; keyPem: string };
  let sessions: HubSession[] = [];

  before(async () => {
    const ca = await createCertificateAuthority("hub CA");
    identity = await issueCertificate(ca, { commonName: "factory-7/pump-3", usage: "client" });
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ds-hub-session-"));
  });
  afterEach(() => {
    for (const s of sessions) s.stop();
    sessions = [];
    rmSync(dir, { recursive: true, force: true });
  });

  /** A hub session whose hub is a stand-in: each control session it opens is a fake call. */
  const start = (o: { enrolled?: boolean; enroll?: (req: EnrollRequest) => Promise<EnrollResponse> } = {}) => {
    if (o.enrolled ?? true) {
      writeFileSync(join(dir, "device.key"), identity.keyPem);
      writeFileSync(join(dir, "device.crt"), identity.certPem);
    }
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "enrol-me");
    const calls: FakeStream[] = [];
    const metrics = agentMetrics(createRegistry("agent"));
    const options: HubSessionOptions = {
      address: "hub:8444",
      caPem: Buffer.from(""),
      device: { namespace: "factory-7", name: "pump-3" },
      stateDir: dir,
      tokenFile,
      allowList: new AllowList({ ssh: "127.0.0.1:22" }),
      dialTimeoutMs: 1_000,
      keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
      metrics,
      log: quietLog,
      backoff: new Backoff({ initialMs: 5, maxMs: 5, jitter: 0 }),
      hubClient: () => ({
        enroll: o.enroll ?? (() => Promise.reject(new Error("not expected"))),
        session: () => {
          const call = new FakeStream();
          calls.push(call);
          return call as unknown as ClientDuplexStream<AgentControl, HubControl>;
        },
        close: () => {},
      }),
    };
    const session = new HubSession(options);
    sessions.push(session);
    session.start();
    const attempts = async (result: string) =>
      (await metrics.hubAttempts.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
    const end = (call: FakeStream, code: status, details: string) =>
      call.emit("status", { code, details, metadata: undefined });
    return { session, calls, attempts, end };
  };

  it("says hello, is connected at the hub's first message, and answers offers by the allow-list", async () => {
    const { session, calls, attempts } = start();
    await until("the control session", () => calls.length === 1);
    const call = calls[0]!;
    assert.deepEqual((call.written[0] as AgentControl).hello?.services, ["ssh"]);
    assert.equal(session.state, "connecting");
    assert.equal(session.waitingFor, "the hub at hub:8444 to answer");
    call.receive({ offer: { stream: "ns/vnc", service: "vnc", relayAddress: "127.0.0.1:1" } });
    await tick();
    assert.equal(session.state, "connected");
    assert.equal(session.waitingFor, "");
    const reply = (call.written as AgentControl[]).find((m) => m.offerReply)?.offerReply;
    assert.equal(reply?.stream, "ns/vnc");
    assert.equal(reply?.refused?.code, "DS_SERVICE_NOT_ALLOWED");
    assert.equal(await attempts("connected"), 1);
  });

  it("a session the hub's TLS refuses waits and names --hub-ca or --hub-server-name, never the relay's flags", async () => {
    const { session, calls, end, attempts } = start();
    await until("the control session", () => calls.length === 1);
    end(calls[0]!, status.UNAVAILABLE, untrusted);
    assert.equal(session.state, "waiting");
    assert.match(
      session.waitingFor,
      /^cannot open a control session with the hub: DS_TLS_UNTRUSTED: the hub's certificate is not trusted \(unable to verify the first certificate\); check that --hub-ca names the CA/,
    );
    assert.doesNotMatch(session.waitingFor, / --ca\b|relay|use-system-ca/);
    await until("the retry after backoff", () => calls.length === 2);
    assert.equal(session.state, "connecting");
    end(calls[1]!, status.UNAVAILABLE, wrongName);
    assert.match(session.waitingFor, /DS_TLS_NAME_MISMATCH: the hub's certificate .*pass --hub-server-name with one$/);
    assert.equal(await attempts("failed"), 2);
  });

  it("a session lost after it was open says so, and the next one connects again", async () => {
    const { session, calls, end } = start();
    await until("the control session", () => calls.length === 1);
    calls[0]!.receive({ heartbeat: { sentAtMs: Date.now() } });
    await tick();
    assert.equal(session.state, "connected");
    end(calls[0]!, status.OK, "");
    assert.equal(session.waitingFor, "control session with the hub lost: DS_HUB_LOST: the hub ended the session");
    await until("the next session", () => calls.length === 2);
    end(calls[1]!, status.UNAVAILABLE, "Connection dropped");
    assert.match(
      session.waitingFor,
      /^cannot open a control session with the hub: DS_HUB_LOST: the connection to the hub/,
    );
  });

  it("revoked: every stream the hub granted stops, and the state says revoked", async () => {
    const { session, calls, end, attempts } = start();
    await until("the control session", () => calls.length === 1);
    calls[0]!.receive({
      offer: { stream: "ns/ssh", service: "ssh", relayAddress: "127.0.0.1:1", destinationToken: "dst_x" },
    });
    await tick();
    assert.deepEqual(session.streams.streams, ["ns/ssh"]);
    end(calls[0]!, status.PERMISSION_DENIED, "DS_DEVICE_REVOKED: the Device was deleted");
    assert.equal(session.state, "revoked");
    assert.deepEqual(session.streams.streams, []);
    assert.equal(session.waitingFor, "access revoked by the hub: DS_DEVICE_REVOKED: the Device was deleted");
    assert.equal(await attempts("revoked"), 1);
  });

  it("stop cancels the session, and nothing that ends after it counts", async () => {
    const { session, calls, end } = start();
    await until("the control session", () => calls.length === 1);
    session.stop();
    assert.ok(calls[0]!.cancelled);
    end(calls[0]!, status.CANCELLED, "Cancelled on client");
    assert.equal(session.state, "stopped");
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(calls.length, 1, "no new session after stop");
  });

  it("an enrolment the hub's TLS refuses names --hub-server-name, and is tried again", async () => {
    let tries = 0;
    const { session } = start({
      enrolled: false,
      enroll: () => {
        tries++;
        return Promise.reject({ code: status.UNAVAILABLE, details: wrongName });
      },
    });
    await until("the first enrolment to fail", () => session.waitingFor.startsWith("cannot enrol"), 10_000);
    assert.equal(session.state, "enrolling");
    assert.match(
      session.waitingFor,
      /^cannot enrol with the hub: DS_TLS_NAME_MISMATCH: the hub's certificate is not valid .*--hub-server-name/,
    );
    await until("a second try", () => tries >= 2, 10_000);
  });
});
