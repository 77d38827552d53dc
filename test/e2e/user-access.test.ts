// Users are people: the relay admits a user's own Kubernetes token only when the API server says
// the user may `connect` to the DeviceStream (asked by the operator, never by the relay itself).
// The whole system on loopback (real API server with token and certificate users, operator
// processes, relays run by the kubelet stand-in, an enrolled agent in front of an echo server),
// and the five cases of issue 12 part 5: allowed; refused without `connect`, naming it; refused
// for a user of another namespace; a deleted ServiceAccount's token refused within the 10 s the
// relay may reuse an answer; and a user who can read the Secret but lacks `connect` kept out
// unless the stream allows its source token.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { load } from "js-yaml";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { forwardLocalPort } from "../../client/local-port.ts";
import { streamAccess } from "../../client/stream-lookup.ts";
import { collectionPath, core, KubeClient, objectPath, type Resource } from "../../kube/client.ts";
import type { KubeObject } from "../../kube/types.ts";
import type { Logger } from "../../runtime/log.ts";
import type { CommandResult } from "../helpers/command.ts";
import { type HubAgent, startHubAgent } from "../helpers/hub-agent.ts";
import { pluginUser, System } from "../helpers/system.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const serviceAccounts: Resource = { group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount" };
const ns = "e2e-users";
const otherNs = "e2e-users-other";
const root = join(import.meta.dirname, "../..");
const quiet: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => quiet,
  enabled: () => false,
};

describe("end to end: users connect with their own Kubernetes credentials", function () {
  this.timeout(240_000);
  let sys: System;
  let echo: TcpTarget;
  let edge: HubAgent | undefined;
  let admin: KubeClient;
  let transcript = "";

  /** The plugin's ClusterRole without `connect`: everything else a user needs to reach the relay. */
  const rulesWithoutConnect = () => {
    const role = load(readFileSync(join(root, "client/rbac.yaml"), "utf8")) as {
      rules: Array<{ verbs: string[] }>;
    };
    return role.rules.map((r) => ({ ...r, verbs: r.verbs.filter((v) => v !== "connect") }));
  };
  const bind = async (namespace: string, name: string, role: { kind: string; name: string }, subject: object) => {
    await sys.env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name, namespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", ...role },
      subjects: [subject],
    } as KubeObject);
  };
  const userSubject = (name: string) => ({ apiGroup: "rbac.authorization.k8s.io", kind: "User", name });
  const tokenKubeconfig = (user: "bob@example.com" | "carol@example.com") =>
    sys.env.cluster.withToken(sys.env.cluster.userToken(user), user);
  const writeTokenKubeconfig = (user: "carol@example.com") => {
    const path = join(sys.env.cluster.dataDir, `${user}.kubeconfig`);
    writeKubeconfigFile(path, tokenKubeconfig(user));
    return path;
  };

  const openStream = async (name: string, spec: Record<string, unknown> = {}) => {
    await sys.env.createStream(ns, name, { device: "edge-1", service: "echo", ...spec });
    return waitFor(
      `stream ${name} to be Connected`,
      async () => {
        const ds = await sys.stream(ns, name);
        return ds.status?.phase === "Connected" ? ds : undefined;
      },
      60_000,
    );
  };

  /** `kubectl devicestream ssh-proxy` with a line on stdin: the echo comes back on stdout. */
  const plugin = async (stream: string, kubeconfig: string): Promise<CommandResult> => {
    const r = await sys.kubectl(["devicestream", "ssh-proxy", stream, "-n", ns], {
      kubeconfig,
      input: "hello through the relay\n",
      timeoutMs: 60_000,
    });
    transcript += `$ kubectl devicestream ssh-proxy ${stream} (${kubeconfig})\n${r.stdout}${r.stderr}\n`;
    return r;
  };

  /**
   * One tunnelled connection straight to the relay's Pod IP (as anyone who can reach the relay
   * could), presenting `user`'s Kubernetes token: the echo, or the error the relay gave.
   */
  const tunnel = async (ds: DeviceStream, user: KubeConfig): Promise<{ echo: string; error?: Error }> => {
    const access = await streamAccess(admin, ds, { user });
    assert.equal(access.usesSourceToken, false);
    let error: Error | undefined;
    const forward = await forwardLocalPort(access.relay, access.credential, "127.0.0.1", 0, quiet, (e) => {
      error = e;
    });
    try {
      const echoed = await new Promise<string>((resolve) => {
        const s = connect(forward.port, "127.0.0.1");
        let got = "";
        s.on("data", (d) => {
          got += d;
        });
        s.once("connect", () => s.end("ping"));
        s.once("close", () => resolve(got));
        s.once("error", () => {});
      });
      // The bridge reports the error right after it resets the local socket.
      if (!echoed) await waitFor("the connection's error", () => error, 5_000).catch(() => undefined);
      return { echo: echoed, error };
    } finally {
      await forward.close();
      await access.close();
    }
  };

  before(async function () {
    this.timeout(180_000);
    [sys, echo] = await Promise.all([System.start({ namespace: ns }), echoServer()]);
    admin = new KubeClient(sys.env.cluster.kubeConfig);
    await sys.env.namespace(otherNs);
    edge = await startHubAgent(sys, { namespace: ns, device: "edge-1", allow: [`echo=${echo.address}`] });
    await sys.env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "devicestreams-user-without-connect", namespace: ns },
      rules: rulesWithoutConnect(),
    } as KubeObject);
    await sys.env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "stream-secrets", namespace: ns },
      rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }],
    } as KubeObject);
  });
  after(async () => {
    admin?.close();
    await edge?.stop();
    await sys?.stop();
    await echo?.close();
  });
  beforeEach(() => {
    transcript = "";
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(`----- agent -----\n${edge?.agent?.logs.slice(-10_000)}\n----- commands -----\n${transcript}`);
    }
  });

  it("a user granted connect goes through, and the stream records who and when", async () => {
    await openStream("allowed");
    const before = Date.now();
    const r = await plugin("allowed", sys.userKubeconfig);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello through the relay\n");
    const ds = await waitFor("status.lastConnection", async () => {
      const s = await sys.stream(ns, "allowed");
      return s.status?.lastConnection?.user ? s : undefined;
    });
    assert.equal(ds.status!.lastConnection!.user, pluginUser);
    assert.ok(Date.parse(ds.status!.lastConnection!.time!) >= Math.floor(before / 1000) * 1000 - 1000);
    const events = await admin.list<{
      items: Array<{ reason?: string; note?: string; regarding?: { name?: string } }>;
    }>(collectionPath(core.events, ns));
    const connected = events.items.filter((e) => e.reason === "UserConnected" && e.regarding?.name === "allowed");
    assert.equal(connected.length, 1, "one Event for the new user");
    assert.match(connected[0]!.note!, /alice@example\.com/);
    const list = await sys.kubectl(["devicestream", "list", "-n", ns], { kubeconfig: sys.userKubeconfig });
    assert.match(list.stdout, /\nallowed\s.*\balice@example\.com\s+\d+s ago\s/);
  });

  it("a user without connect is refused, and told which permission is missing", async () => {
    await bind(
      ns,
      "carol",
      { kind: "Role", name: "devicestreams-user-without-connect" },
      userSubject("carol@example.com"),
    );
    const ds = await openStream("no-connect");
    const r = await plugin("no-connect", writeTokenKubeconfig("carol@example.com"));
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      /DS_USER_FORBIDDEN: user "carol@example\.com" may not connect to devicestreams\/no-connect in namespace "e2e-users" \(RBAC: verb connect on devicestreams\.devicestreams\.io\)/,
    );
    assert.equal((await sys.stream(ns, ds.metadata.name!)).status?.lastConnection, undefined);
  });

  it("a user granted connect in another namespace is refused here", async () => {
    await bind(otherNs, "bob", { kind: "ClusterRole", name: "devicestreams-user" }, userSubject("bob@example.com"));
    const ds = await openStream("other-namespace");
    const bob = await tunnel(ds, tokenKubeconfig("bob@example.com"));
    assert.equal(bob.echo, "");
    assert.equal((bob.error as { code?: string })?.code, "DS_USER_FORBIDDEN", String(bob.error));
    assert.match(
      bob.error!.message,
      /user "bob@example\.com" may not connect to devicestreams\/other-namespace in namespace "e2e-users"/,
    );
    // The same stream lets alice through: the refusal is bob's alone.
    assert.equal((await tunnel(ds, sys.userKubeConfig())).echo, "ping");
  });

  it("a ServiceAccount deleted: its token is refused within the 10 s an answer may be reused", async () => {
    const sa = "ci-bot";
    await admin.create(
      collectionPath(serviceAccounts, ns),
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa } },
      "tests",
    );
    await bind(
      ns,
      sa,
      { kind: "ClusterRole", name: "devicestreams-user" },
      { kind: "ServiceAccount", name: sa, namespace: ns },
    );
    const tr = await admin.create<{ status: { token: string } }>(
      `${objectPath(serviceAccounts, ns, sa)}/token`,
      { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } },
      "tests",
    );
    const bot = sys.env.cluster.withToken(tr.status.token, sa);
    const ds = await openStream("revoked");
    assert.equal((await tunnel(ds, bot)).echo, "ping");
    await admin.delete(objectPath(serviceAccounts, ns, sa));
    const deleted = Date.now();
    const refused = await waitFor(
      "the deleted ServiceAccount's token to be refused",
      async () => {
        const r = await tunnel(ds, bot);
        return r.echo === "" ? r : undefined;
      },
      20_000,
    );
    const afterMs = Date.now() - deleted;
    assert.equal((refused.error as { code?: string })?.code, "DS_USER_UNAUTHENTICATED", String(refused.error));
    assert.match(refused.error!.message, /did not accept your token/);
    // 10 s of reuse at most, plus one attempt's round trip on a loaded machine.
    assert.ok(afterMs <= 13_000, `refused only ${afterMs} ms after the deletion`);
  });

  it("a user who can read the Secret but lacks connect cannot use the source token, unless the stream allows it", async () => {
    // A client certificate: no bearer token, so the plugin falls back to the Secret's source token.
    const erin = sys.writeKubeconfig("erin", "erin@example.com");
    await bind(
      ns,
      "erin",
      { kind: "Role", name: "devicestreams-user-without-connect" },
      userSubject("erin@example.com"),
    );
    await bind(ns, "erin-secrets", { kind: "Role", name: "stream-secrets" }, userSubject("erin@example.com"));
    await openStream("token-off");
    const off = await plugin("token-off", erin);
    assert.notEqual(off.code, 0);
    assert.equal(off.stdout, "");
    assert.match(off.stderr, /DS_SOURCE_TOKEN_DISABLED: .*spec\.access\.sourceToken: true/);
    const hints = off.stderr.match(/your kubeconfig yields no bearer token/g) ?? [];
    assert.equal(hints.length, 1, `the fallback is explained once:\n${off.stderr}`);

    await openStream("token-on", { access: { sourceToken: true } });
    const on = await plugin("token-on", erin);
    assert.equal(on.code, 0, on.stderr);
    assert.equal(on.stdout, "hello through the relay\n");
  });
});

function writeKubeconfigFile(path: string, kc: KubeConfig): void {
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
}
