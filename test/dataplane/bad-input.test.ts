// Bad input on the data plane: wrong, swapped and expired credentials, a service the device does
// not allow, a target that refuses, garbage and oversized messages on the relay's port, and a
// client that trusts the wrong CA. Each must fail with an error naming its cause, and must not
// disturb anything else: a healthy stream with a connection held open runs through every case
// and still moves hashed bytes afterwards.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { status } from "@grpc/grpc-js";
import { type StaticStream, writeStaticStream } from "../../cli/static-stream.ts";
import { decodeFrame, encodeData, encodeFin } from "../../proto/frames.ts";
import { maxFrameBytes } from "../../runtime/grpc-options.ts";
import { newToken } from "../../transport/credentials.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { type DataPlane, startAgent, startClient, startDataPlane, startRelay } from "../helpers/dataplane.ts";
import { freePort } from "../helpers/free-port.ts";
import {
  assertHealthy,
  attachFailed,
  callOutcome,
  connectionFailed,
  countingTarget,
  countMatches,
  expectReset,
  HeldConnection,
  metric,
  RawRelayClient,
  reasonPattern,
  waitForMetric,
  waitForReason,
  writeTokenFile,
} from "../helpers/robustness.ts";
import { collect } from "../helpers/tcp-client.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

describe("data plane: bad input fails clearly and harms nothing else", function () {
  this.timeout(60_000);
  let echo: TcpTarget;
  let plane: DataPlane;
  let dir: string;
  /** Processes a case started, for the failure report and the clean-up. */
  let extra: ComponentProcess[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ds-bad-input-"));
    echo = await echoServer();
    plane = await startDataPlane({ service: "echo", allow: [`echo=${echo.address}`] });
  });
  after(async () => {
    await plane?.stop();
    await echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(plane.logs().slice(-15_000));
      for (const p of extra) console.error(`----- ${p.name} (this case) -----\n${p.logs.slice(-8_000)}`);
    }
    await Promise.all(extra.map((p) => p.stop()));
    extra = [];
  });

  /**
   * A case that must harm nothing else: a connection on the healthy stream is held open through
   * it, and afterwards that connection, a new one and the relay's process are all still fine.
   */
  const harmless = (title: string, body: () => Promise<void>) =>
    it(title, async () => {
      const held = await HeldConnection.open(plane.client.port);
      try {
        await body();
        await held.exchange();
        await held.finish();
        await assertHealthy(plane.client.port);
        assert.equal(plane.relay.process.proc.exitCode, null, "the relay is still running");
      } finally {
        held.destroy();
      }
    });

  const track = <T extends { process: ComponentProcess }>(x: T): T => {
    extra.push(x.process);
    return x;
  };

  /** Another stream's files under the shared temp folder. */
  const otherStream = (name: string, o: { service: string; expiresAt?: Date }) =>
    writeStaticStream(join(dir, name), { stream: `test/${name}`, ...o });

  describe("credentials", () => {
    harmless("a client with a wrong source credential is told DS_AUTH_INVALID", async () => {
      const wrong = writeTokenFile(dir, "wrong-source.token", newToken("source"));
      const client = track(await startClient({ ...plane.stream, sourceTokenFile: wrong }, plane.relay.address));
      await expectReset(client.port);
      const m = await waitForReason(client.process, connectionFailed, "DS_AUTH_INVALID");
      assert.match(m, /source credential is not valid/);
      assert.equal(
        await metric(plane.relay.metricsPort, "devicestreams_relay_auth_failures_total", 'reason="DS_AUTH_INVALID"'),
        1,
      );
    });

    harmless(
      "an agent with a wrong destination credential is told DS_AUTH_INVALID and retries with backoff",
      async () => {
        const wrong = writeTokenFile(dir, "wrong-destination.token", newToken("destination"));
        const agent = track(
          await startAgent(
            { ...plane.stream, destinationTokenFile: wrong },
            plane.relay.address,
            ["echo=127.0.0.1:9"],
            [],
            false,
          ),
        );
        const retry = new RegExp(`${reasonPattern(attachFailed, "DS_AUTH_INVALID").source} retryInMs=(\\d+)`, "g");
        await waitFor("three attach attempts", () => countMatches(agent.process, retry) >= 3, 15_000);
        const attempts = [...agent.process.logs.matchAll(retry)];
        assert.match(JSON.parse(attempts[0]![1]!), /destination credential is not valid/);
        const delays = attempts.map((a) => Number(a[2]));
        // 500 ms +-20 %, then x1.6 each time: the jittered ranges do not overlap, so each delay is longer.
        for (let i = 1; i < delays.length; i++) assert.ok(delays[i]! > delays[i - 1]!, `backoff grows: ${delays}`);
        assert.equal(await metric(agent.metricsPort, "devicestreams_agent_relays_attached"), 0);
        // The real agent of the stream is still the attached one.
        assert.equal(await metric(plane.relay.metricsPort, "devicestreams_relay_device_attached"), 1);
      },
    );

    harmless("the source token used on the device side is named as the other role's credential", async () => {
      const agent = track(
        await startAgent(
          { ...plane.stream, destinationTokenFile: plane.stream.sourceTokenFile },
          plane.relay.address,
          ["echo=127.0.0.1:9"],
          [],
          false,
        ),
      );
      const m = await waitForReason(agent.process, attachFailed, "DS_AUTH_INVALID");
      assert.match(m, /this is the source credential; the destination side needs the destination token/);
      assert.equal(await metric(plane.relay.metricsPort, "devicestreams_relay_device_attached"), 1);
    });

    harmless("the destination token used on the service side is named as the other role's credential", async () => {
      const client = track(
        await startClient({ ...plane.stream, sourceTokenFile: plane.stream.destinationTokenFile }, plane.relay.address),
      );
      await expectReset(client.port);
      const m = await waitForReason(client.process, connectionFailed, "DS_AUTH_INVALID");
      assert.match(m, /this is the destination credential; the source side needs the source token/);
    });

    harmless("a flood of refused calls is counted in full, logged once, and never told the stream", async () => {
      const labels = 'role="source",reason="DS_AUTH_INVALID"';
      const line = /call refused role=source reason=DS_AUTH_INVALID/;
      const countBefore =
        (await metric(plane.relay.metricsPort, "devicestreams_relay_auth_failures_total", labels)) ?? 0;
      const linesBefore = countMatches(plane.relay.process, line);
      const raw = new RawRelayClient(plane.relay.address, plane.stream);
      try {
        const calls = 50;
        const outcomes = await Promise.all(
          Array.from({ length: calls }, () => callOutcome(raw.call("Connect", newToken("source")))),
        );
        for (const { status: s } of outcomes) {
          assert.equal(s.code, status.UNAUTHENTICATED);
          assert.match(s.details, /^DS_AUTH_INVALID: the source credential is not valid for this relay; fetch/);
          assert.doesNotMatch(s.details, /static\/demo/, "an unauthenticated caller is not told the stream");
        }
        await waitForMetric(
          plane.relay.metricsPort,
          "devicestreams_relay_auth_failures_total",
          countBefore + calls,
          labels,
        );
        // The earlier case may have used this 10 s window already: then no new line at all.
        assert.ok(countMatches(plane.relay.process, line) - linesBefore <= 1, "at most one WARN line per window");
      } finally {
        raw.close();
      }
    });

    harmless("an expired stream's credentials are refused with DS_AUTH_EXPIRED on both sides", async () => {
      const s = await otherStream("expired", { service: "echo", expiresAt: new Date(Date.now() - 60_000) });
      const relay = track(await startRelay(s));
      const agent = track(await startAgent(s, relay.address, [`echo=${echo.address}`], [], false));
      const client = track(await startClient(s, relay.address));
      const a = await waitForReason(agent.process, attachFailed, "DS_AUTH_EXPIRED");
      assert.match(a, /expired at/);
      await expectReset(client.port);
      const c = await waitForReason(client.process, connectionFailed, "DS_AUTH_EXPIRED");
      assert.match(c, /open a new stream/);
    });
  });

  describe("the device's allow-list and its targets", () => {
    harmless("a service not in the allow-list is refused by the device, which dials nothing", async () => {
      const allowed = await countingTarget();
      try {
        const s = await otherStream("not-allowed", { service: "secret" });
        const relay = track(await startRelay(s));
        const agent = track(await startAgent(s, relay.address, [`web=${allowed.address}`], [], false));
        const refusal = await waitForReason(agent.process, attachFailed, "DS_SERVICE_NOT_ALLOWED");
        assert.match(refusal, /service "secret" is not in this device's allow-list \(it has: web\)/);
        const client = track(await startClient(s, relay.address));
        for (let i = 0; i < 3; i++) await expectReset(client.port);
        const m = await waitForReason(client.process, connectionFailed, "DS_DEVICE_REFUSED");
        assert.match(m, /DS_SERVICE_NOT_ALLOWED/);
        assert.equal(await metric(relay.metricsPort, "devicestreams_relay_device_attached"), 0);
        assert.equal(await metric(relay.metricsPort, "devicestreams_relay_connections_total", 'result="refused"'), 3);
        assert.equal(allowed.accepted(), 0, "the agent dialled nothing");
        assert.equal(await metric(agent.metricsPort, "devicestreams_agent_dials_total"), undefined);
      } finally {
        await allowed.close();
      }
    });

    harmless(
      "a target that refuses connections gives DS_TARGET_REFUSED, and the stream serves it once it listens",
      async () => {
        const port = await freePort();
        const s = await otherStream("refusing", { service: "late" });
        const relay = track(await startRelay(s));
        const agent = track(await startAgent(s, relay.address, [`late=127.0.0.1:${port}`]));
        const client = track(await startClient(s, relay.address));
        await expectReset(client.port);
        await expectReset(client.port);
        const m = await waitForReason(client.process, connectionFailed, "DS_TARGET_REFUSED");
        assert.match(
          m,
          new RegExp(`service "late" \\(127\\.0\\.0\\.1:${port} on the device\\).*is the service running`),
        );
        assert.equal(await metric(agent.metricsPort, "devicestreams_agent_dials_total", 'result="refused"'), 2);
        // The refused dials left the session intact: once the target listens, the same stream carries bytes.
        const late = createServer({ allowHalfOpen: true }, (sock) => {
          sock.on("error", () => {});
          sock.pipe(sock);
        });
        await new Promise<void>((r) => late.listen(port, "127.0.0.1", r));
        try {
          await assertHealthy(client.port);
          assert.doesNotMatch(agent.process.logs, /relay session lost/);
        } finally {
          late.close();
        }
      },
    );
  });

  describe("garbage on the relay's gRPC port", () => {
    /** Sends `bytes` on a raw TCP connection to the relay; the relay must close it, and soon. */
    const sendRaw = async (bytes: Buffer | Buffer[]) => {
      const [host, port] = plane.relay.address.split(":");
      const sock = netConnect(Number(port), host!);
      await new Promise((r, j) => sock.once("connect", r).once("error", j));
      const done = collect(sock, 10_000);
      for (const b of Array.isArray(bytes) ? bytes : [bytes]) sock.write(b);
      return done;
    };

    const handshakeFailures = async () =>
      (await metric(plane.relay.metricsPort, "devicestreams_relay_tls_handshake_failures_total")) ?? 0;

    harmless("random bytes, an HTTP/1.1 request and a TLS ClientHello followed by junk are dropped", async () => {
      const before = await handshakeFailures();
      await sendRaw(randomBytes(64 * 1024));
      await sendRaw(Buffer.from("GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n"));
      await sendRaw(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); // plaintext HTTP/2 to a TLS port
      const hello = await captureClientHello();
      await sendRaw([hello, randomBytes(16 * 1024)]);
      // The relay counts and logs each one, naming what was wrong.
      await waitForMetric(plane.relay.metricsPort, "devicestreams_relay_tls_handshake_failures_total", before + 4);
      await plane.relay.process.waitFor(/TLS handshake failed peer=127\.0\.0\.1:\d+ reason="wrong version number"/);
      await plane.relay.process.waitFor(/TLS handshake failed peer=127\.0\.0\.1:\d+ reason="http request"/);
    });

    harmless("junk after a good TLS handshake (instead of HTTP/2) is dropped", async () => {
      const [host, port] = plane.relay.address.split(":");
      const sock = tlsConnect({
        host,
        port: Number(port),
        ca: plane.stream.ca.certPem,
        servername: "localhost",
        ALPNProtocols: ["h2"],
      });
      await new Promise((r, j) => sock.once("secureConnect", r).once("error", j));
      const done = collect(sock, 10_000);
      sock.write(randomBytes(32 * 1024));
      await done;
    });

    harmless("an oversized message fails its call with RESOURCE_EXHAUSTED; the relay keeps serving", async () => {
      const raw = new RawRelayClient(plane.relay.address, plane.stream);
      try {
        const call = raw.call("Connect", plane.stream.sourceToken);
        const outcome = callOutcome(call);
        call.write(encodeData(randomBytes(maxFrameBytes + 1024)));
        const { status: s } = await outcome;
        assert.equal(s.code, status.RESOURCE_EXHAUSTED, `status ${status[s.code]}: ${s.details}`);
        assert.match(s.details, /larger than max/);
        // The same raw client still gets a fair hearing for a frame of the allowed size.
        const ok = raw.call("Connect", plane.stream.sourceToken);
        const okOutcome = callOutcome(ok);
        const payload = randomBytes(maxFrameBytes);
        ok.write(encodeData(payload));
        ok.write(encodeFin());
        ok.end();
        const r = await okOutcome;
        assert.equal(r.status.code, status.OK, r.status.details);
        const back = Buffer.concat(r.frames.map(decodeFrame).flatMap((f) => (f.kind === "data" ? [f.data] : [])));
        assert.ok(back.equals(payload), "a frame of exactly the limit passes");
      } finally {
        raw.close();
      }
    });

    const protocolErrors = async () =>
      (await metric(
        plane.relay.metricsPort,
        "devicestreams_relay_connections_closed_total",
        'reason="protocol_error"',
      )) ?? 0;

    /** Sends frames ending in a bad one on a paired Connect call; the call must fail with DS_PROTOCOL, nothing else. */
    const sendBadFrame = async (why: RegExp, ...sent: Buffer[]) => {
      const before = await protocolErrors();
      const raw = new RawRelayClient(plane.relay.address, plane.stream);
      try {
        const call = raw.call("Connect", plane.stream.sourceToken);
        const outcome = callOutcome(call);
        for (const frame of sent) call.write(frame);
        const { status: s, frames } = await outcome;
        assert.equal(
          s.code,
          status.INVALID_ARGUMENT,
          `a protocol error is not a clean end: ${status[s.code]} ${s.details}`,
        );
        assert.match(s.details, why);
        const resets = frames.map(decodeFrame).filter((f) => f.kind === "reset");
        assert.equal(resets[0]?.kind === "reset" && resets[0].reset.code, "DS_PROTOCOL");
        await waitFor("the relay to count the protocol error", async () => (await protocolErrors()) === before + 1);
      } finally {
        raw.close();
      }
    };

    harmless("a frame of unknown kind fails its call with DS_PROTOCOL; the relay keeps serving", async () => {
      await sendBadFrame(
        /^DS_PROTOCOL: the service side sent a frame of unknown kind/,
        Buffer.from([0xff, 0x03, 1, 2, 3]),
      );
    });

    harmless("a data frame whose length field lies fails its call with DS_PROTOCOL", async () => {
      // Says 100 bytes, carries 3: forwarded as is, the device would blame the relay for it.
      await sendBadFrame(
        /^DS_PROTOCOL: the service side sent a data frame whose length/,
        Buffer.from([0x0a, 100, 1, 2, 3]),
      );
    });

    harmless("a Fin with a body fails its call with DS_PROTOCOL and is not forwarded", async () => {
      // 256 KiB riding on a Fin: not data, so neither counted nor throttled if it were let through.
      const body = randomBytes(256 * 1024);
      const fin = Buffer.concat([Buffer.from([0x12, 0x80, 0x80, 0x10]), body]);
      await sendBadFrame(/^DS_PROTOCOL: the service side sent a fin frame with a body/, fin);
    });

    harmless("a second Fin from the same side fails its call with DS_PROTOCOL", async () => {
      await sendBadFrame(/^DS_PROTOCOL: the service side sent a fin frame after its Fin/, encodeFin(), encodeFin());
    });

    harmless("data after a Fin from the same side fails its call with DS_PROTOCOL", async () => {
      await sendBadFrame(
        /^DS_PROTOCOL: the service side sent a data frame after its Fin/,
        encodeData(Buffer.from("hello")),
        encodeFin(),
        encodeData(randomBytes(64 * 1024)),
      );
    });

    harmless("an Accept for a connection nobody asked for is refused", async () => {
      const raw = new RawRelayClient(plane.relay.address, plane.stream);
      try {
        const call = raw.call("Accept", plane.stream.destinationToken, 999_999);
        const { status: s } = await callOutcome(call);
        assert.equal(s.code, status.NOT_FOUND);
        assert.match(s.details, /^DS_UNKNOWN_CONNECTION: /);
        const missing = raw.call("Accept", plane.stream.destinationToken);
        const m = await callOutcome(missing);
        assert.equal(m.status.code, status.INVALID_ARGUMENT);
        assert.match(m.status.details, /^DS_PROTOCOL: Accept needs a connection id/);
      } finally {
        raw.close();
      }
    });
  });

  describe("TLS trust", () => {
    let stranger: StaticStream;
    before(async () => {
      stranger = await otherStream("stranger", { service: "echo" });
    });

    harmless("a client that trusts another CA says the relay's certificate is not trusted", async () => {
      const client = track(await startClient({ ...plane.stream, caCert: stranger.caCert }, plane.relay.address));
      await expectReset(client.port);
      const m = await waitForReason(client.process, connectionFailed, "DS_TLS_UNTRUSTED");
      assert.match(m, /^DS_TLS_UNTRUSTED: the relay's certificate is not trusted \(.+\); check that --ca names the CA/);
      // The relay's operator sees it too.
      await plane.relay.process.waitFor(/TLS handshake failed peer=127\.0\.0\.1:\d+ reason="the client hung up/);
    });

    harmless("a client that expects another name says the certificate does not cover it", async () => {
      const client = track(await startClient(plane.stream, plane.relay.address, ["--server-name", "relay.example"]));
      await expectReset(client.port);
      const m = await waitForReason(client.process, connectionFailed, "DS_TLS_NAME_MISMATCH");
      assert.match(m, /relay\.example.*--server-name/);
    });

    harmless("an agent that trusts another CA says the relay's certificate is not trusted", async () => {
      const agent = track(
        await startAgent(
          { ...plane.stream, caCert: stranger.caCert },
          plane.relay.address,
          ["echo=127.0.0.1:9"],
          [],
          false,
        ),
      );
      const m = await waitForReason(agent.process, attachFailed, "DS_TLS_UNTRUSTED");
      assert.match(m, /^DS_TLS_UNTRUSTED: the relay's certificate is not trusted \(.+\); check that --ca names the CA/);
    });
  });
});

/** The first flight of a real TLS 1.3 client, captured from a listener that never answers. */
async function captureClientHello(): Promise<Buffer> {
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((r) => {
    resolveHello = r;
  });
  const server = createServer((s: Socket) => s.once("data", (b: Buffer) => resolveHello(b)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const client = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false });
  client.on("error", () => {});
  try {
    return await hello;
  } finally {
    client.destroy();
    server.close();
  }
}
