import assert from "node:assert/strict";
import { Server, type StatusObject, status } from "@grpc/grpc-js";
import { freePort } from "../runtime/free-port.ts";
import { createCertificateAuthority, issueCertificate } from "../runtime/pki.ts";
import { serverCredentials } from "../runtime/tls.ts";
import { callError, type DialledServer, hubFromFlags, relayFromFlags, relayFromOffer } from "./call-error.ts";
import { RelayClient } from "./relay-client.ts";

/** The status grpc-js gives a call to `address` made with this trust, as a real failure reads. */
async function failedCall(address: string, caPem: string, serverName?: string): Promise<StatusObject> {
  const client = new RelayClient({
    address,
    tls: { caPem },
    keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
    serverName,
  });
  try {
    const call = client.connect("src_x");
    call.on("error", () => {});
    return await new Promise<StatusObject>((resolve) => call.on("status", resolve));
  } finally {
    client.close();
  }
}

describe("call errors: what failed, and which flag to check", () => {
  // Real grpc-js failures from a TLS server on loopback, so a change in their wording fails here.
  const failures: Record<"untrusted" | "nameMismatch" | "unavailable", StatusObject> = {} as never;
  let server: Server;

  before(async function () {
    this.timeout(20_000);
    const ca = await createCertificateAuthority("right CA");
    const stranger = await createCertificateAuthority("another CA");
    const cert = await issueCertificate(ca, { commonName: "server", ipAddresses: ["127.0.0.1"], usage: "server" });
    server = new Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", serverCredentials(cert), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const address = `127.0.0.1:${port}`;
    failures.untrusted = await failedCall(address, stranger.certPem);
    failures.nameMismatch = await failedCall(address, ca.certPem, "server.example");
    failures.unavailable = await failedCall(`127.0.0.1:${await freePort()}`, ca.certPem);
  });
  after(() => server?.forceShutdown());

  it("grpc-js reports each as UNAVAILABLE with the cause only in its text", () => {
    for (const s of Object.values(failures)) assert.equal(s.code, status.UNAVAILABLE, s.details);
  });

  const cases: [string, DialledServer, RegExp[], RegExp[]][] = [
    [
      "a relay named by --ca and --server-name",
      relayFromFlags,
      [
        /^the relay's certificate is not trusted \(.+\); check that --ca names the CA that issued the relay's certificate \(the stream's ca\.crt\), not another stream's or cluster's$/,
        /^the relay's certificate is not valid for the address dialled \(.*server\.example.*\); .*pass --server-name with one$/,
        /ECONNREFUSED.*; check the relay address, that the relay runs, and that --ca names its CA$/,
      ],
      [/--hub-/, /hub's offer/],
    ],
    [
      "the hub named by --hub-ca and --hub-server-name",
      hubFromFlags,
      [
        /^the hub's certificate is not trusted \(.+\); check that --hub-ca names the CA that issued the hub's certificate \(the operator CA's tls\.crt\), not another cluster's$/,
        /^the hub's certificate is not valid for the address dialled \(.*server\.example.*\); .*pass --hub-server-name with one$/,
        /ECONNREFUSED.*; check the hub address, that the hub runs, and that --hub-ca names its CA$/,
      ],
      [/(^|[^-])--ca\b/, /(^|[^-])--server-name\b/, /relay/],
    ],
    [
      "a relay the hub offered (no flag names its CA)",
      relayFromOffer,
      [
        /^the relay's certificate is not trusted \(.+\); the CA came with the hub's offer/,
        /^the relay's certificate is not valid for the address dialled \(.+\); the address and name came with the hub's offer/,
        /ECONNREFUSED.*; check that the relay runs and that this device reaches the address the hub offered$/,
      ],
      [/--/],
    ],
  ];
  for (const [title, dialled, [untrusted, nameMismatch, unavailable], never] of cases) {
    it(`${title}: untrusted, wrong name and unavailable each say their cause and the right flag`, () => {
      const got = {
        untrusted: callError(failures.untrusted, dialled),
        nameMismatch: callError(failures.nameMismatch, dialled),
        unavailable: callError(failures.unavailable, dialled),
      };
      assert.equal(got.untrusted.code, "DS_TLS_UNTRUSTED");
      assert.match(got.untrusted.message, untrusted!);
      assert.doesNotMatch(got.untrusted.message, /use-system-ca/, "Node's hint does not apply");
      assert.equal(got.nameMismatch.code, "DS_TLS_NAME_MISMATCH");
      assert.match(got.nameMismatch.message, nameMismatch!);
      assert.equal(got.unavailable.code, dialled.server === "hub" ? "DS_HUB_UNAVAILABLE" : "DS_RELAY_UNAVAILABLE");
      assert.match(got.unavailable.message, unavailable!);
      assert.equal(got.unavailable.retryable, true);
      for (const e of Object.values(got)) for (const n of never) assert.doesNotMatch(e.message, n);
    });
  }

  it("a dropped connection is a loss of the server dialled, retryable", () => {
    const dropped = { code: status.UNAVAILABLE, details: "Connection dropped" };
    const relay = callError(dropped, relayFromFlags);
    assert.equal(relay.code, "DS_RELAY_LOST");
    assert.match(relay.message, /^the connection to the relay was lost/);
    const hub = callError(dropped, hubFromFlags);
    assert.equal(hub.code, "DS_HUB_LOST");
    assert.match(hub.message, /^the connection to the hub was lost \(the hub stopped or restarted/);
    assert.ok(relay.retryable && hub.retryable);
  });

  it("a connection the server reset (killed with bytes unread) is a loss too, not a wrong address or CA", () => {
    for (const details of ["read ECONNRESET", "write EPIPE"]) {
      const e = callError({ code: status.UNAVAILABLE, details }, relayFromFlags);
      assert.equal(e.code, "DS_RELAY_LOST", details);
      assert.doesNotMatch(e.message, /--ca/);
    }
    const never = {
      code: status.UNAVAILABLE,
      details: "No connection established. Last error: Error: read ECONNRESET",
    };
    assert.equal(callError(never, relayFromFlags).code, "DS_RELAY_UNAVAILABLE");
  });

  it("passes the far end's own DS_ code through, whatever was dialled", () => {
    for (const dialled of [relayFromFlags, hubFromFlags, relayFromOffer]) {
      const e = callError({ code: status.UNAVAILABLE, details: "DS_RELAY_DRAINING: connect again" }, dialled);
      assert.equal(e.code, "DS_RELAY_DRAINING");
      assert.equal(e.message, "connect again");
      assert.equal(e.retryable, true);
      const refused = callError({ code: status.PERMISSION_DENIED, details: "DS_DEVICE_REVOKED: gone" }, dialled);
      assert.equal(refused.code, "DS_DEVICE_REVOKED");
      assert.equal(refused.retryable, false);
    }
  });

  it("any other status keeps grpc-js's code and words, or names the server when there are none", () => {
    const e = callError({ code: status.INTERNAL, details: "" }, hubFromFlags);
    assert.equal(e.code, "DS_GRPC_INTERNAL");
    assert.equal(e.message, "the call to the hub failed");
    assert.equal(
      callError({ code: status.UNIMPLEMENTED, details: "no such method" }, relayFromFlags).message,
      "no such method",
    );
  });

  it("escapes control characters in the far end's message: a device's words never reach a terminal raw", () => {
    const e = callError(
      { code: status.FAILED_PRECONDITION, details: "DS_DEVICE_REFUSED: refused: \x1b]0;owned\x07\u202etxt" },
      relayFromFlags,
    );
    assert.equal(e.message, "refused: \\x1b]0;owned\\x07\\u202etxt");
    const plain = callError({ code: status.PERMISSION_DENIED, details: "no\x1b[2Jpe" }, relayFromFlags);
    assert.equal(plain.message, "no\\x1b[2Jpe");
  });
});
