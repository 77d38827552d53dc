import assert from "node:assert/strict";
import { Metadata } from "@grpc/grpc-js";
import { metadataKeys } from "../proto/metadata.ts";
import { newToken, tokenSha256 } from "../transport/credentials.ts";
import { authenticate, parseStreamConfig, type StreamConfig, streamServices } from "./stream-config.ts";

describe("relay authentication", () => {
  const source = newToken("source");
  const destination = newToken("destination");
  const config: StreamConfig = {
    version: 1,
    stream: "secret-namespace/secret-stream",
    service: "ssh",
    credentials: [
      { role: "source", sha256: tokenSha256(source) },
      { role: "destination", sha256: tokenSha256(destination) },
    ],
  };
  const bearer = (token?: string) => {
    const md = new Metadata();
    if (token !== undefined) md.set(metadataKeys.authorization, `Bearer ${token}`);
    return md;
  };
  const refusal = (role: "source" | "destination", token?: string) => {
    const r = authenticate(config, role, bearer(token));
    assert.equal(r.ok, false);
    return r as { code: string; message: string };
  };

  it("admits each role's own token", () => {
    assert.deepEqual(authenticate(config, "source", bearer(source)), { ok: true });
    assert.deepEqual(authenticate(config, "destination", bearer(destination)), { ok: true });
  });

  it("tells a caller with a wrong token what to do, without naming the stream", () => {
    for (const token of [newToken("source"), "garbage", `${source}x`]) {
      const r = refusal("source", token);
      assert.equal(r.code, "DS_AUTH_INVALID");
      assert.match(r.message, /^the source credential is not valid for this relay; fetch the stream's source token/);
      assert.doesNotMatch(r.message, /secret/, "an unauthenticated caller learns nothing of the stream");
    }
  });

  it("names a role mix-up, which reveals nothing about the stream", () => {
    const r = refusal("destination", source);
    assert.equal(r.code, "DS_AUTH_INVALID");
    assert.match(r.message, /this is the source credential; the destination side needs the destination token/);
    assert.doesNotMatch(r.message, /secret/);
  });

  it("refuses the right source token of a stream that accepts only users' own credentials, naming the field", () => {
    const usersOnly = { ...config, acceptSourceToken: false };
    const r = authenticate(usersOnly, "source", bearer(source));
    assert.equal(r.ok === false && r.code, "DS_SOURCE_TOKEN_DISABLED");
    assert.match(r.ok === false ? r.message : "", /spec\.access\.sourceToken: true/);
    // Only a holder of the stream's token learns that; a wrong token gets the generic answer.
    assert.equal(
      (authenticate(usersOnly, "source", bearer(newToken("source"))) as { code: string }).code,
      "DS_AUTH_INVALID",
    );
    // The device's side is not affected; and relay.json files without the field keep accepting it.
    assert.deepEqual(authenticate(usersOnly, "destination", bearer(destination)), { ok: true });
    assert.deepEqual(authenticate({ ...config, acceptSourceToken: true }, "source", bearer(source)), { ok: true });
  });

  it("asks for a credential when none was presented", () => {
    const r = refusal("source");
    assert.equal(r.code, "DS_AUTH_MISSING");
    assert.doesNotMatch(r.message, /secret/);
  });

  it("refuses the right token of an expired stream", () => {
    const expired = { ...config, expiresAt: "2020-01-01T00:00:00Z" };
    const r = authenticate(expired, "source", bearer(source));
    assert.equal(r.ok === false && r.code, "DS_AUTH_EXPIRED");
  });

  it("admits either of two tokens of a role during a rotation, and only that role's", () => {
    const next = newToken("source");
    const rotating = {
      ...config,
      credentials: [...config.credentials, { role: "source" as const, sha256: tokenSha256(next) }],
    };
    assert.deepEqual(authenticate(rotating, "source", bearer(source)), { ok: true });
    assert.deepEqual(authenticate(rotating, "source", bearer(next)), { ok: true });
    assert.equal(authenticate(rotating, "destination", bearer(next)).ok, false);
  });

  it("checks limits: known names, integers in range", () => {
    const text = (limits: unknown) => JSON.stringify({ ...config, limits });
    assert.deepEqual(parseStreamConfig(text({ maxConnections: 3, idleTimeoutMs: 0 }), "x").limits, {
      maxConnections: 3,
      idleTimeoutMs: 0,
    });
    assert.throws(
      () => parseStreamConfig(text({ maxConnections: 0 }), "x"),
      /limits\.maxConnections must be an integer >= 1/,
    );
    assert.throws(() => parseStreamConfig(text({ bandwidth: 5 }), "x"), /limits\.bandwidth is not a limit/);
    assert.throws(
      () => parseStreamConfig(text({ idleTimeoutMs: 1.5 }), "x"),
      /limits\.idleTimeoutMs must be an integer/,
    );
    assert.throws(() => parseStreamConfig(text([1]), "x"), /limits\.0 is not a limit/);
  });

  it("reads a stream's services, the first being service, and refuses any other list", () => {
    const text = (services: unknown) => JSON.stringify({ ...config, services });
    assert.deepEqual(parseStreamConfig(text(["ssh", "web"]), "x").services, ["ssh", "web"]);
    assert.deepEqual(streamServices(parseStreamConfig(JSON.stringify(config), "x")), ["ssh"], "absent: service alone");
    for (const [bad, why] of [
      [[], /services must be a list of 1 to 16/],
      ["ssh", /services must be a list/],
      [Array.from({ length: 17 }, (_, i) => `s${i}`), /services must be a list of 1 to 16/],
      [["web", "ssh"], /services must start with service/],
      [["ssh", "ssh"], /must not name a service twice/],
      [["ssh", "Web"], /must hold allow-list names/],
      [["ssh", 7], /must hold allow-list names/],
    ] as const) {
      assert.throws(
        () => parseStreamConfig(text(bad), "relay.json"),
        (err: Error & { code?: string }) => err.code === "DS_CONFIG" && why.test(err.message),
        JSON.stringify(bad),
      );
    }
  });

  it("refuses relay.json of any other shape with DS_CONFIG, not a TypeError (found by fuzzing)", () => {
    const sha = "a".repeat(64);
    for (const [text, why] of [
      ["null", /relay\.json must hold a JSON object, not null/],
      ["[1]", /must hold a JSON object, not \[1\]/],
      ['{"credentials":0}', /credentials needs a source entry with a sha256/],
      ['{"credentials":[null,7]}', /credentials needs a source entry/],
      [`{"credentials":[{"role":"source","sha256":["${sha}"]}]}`, /credentials needs a source entry/],
      ['{"expiresAt":123}', /expiresAt is not a time/],
      ['{"acceptSourceToken":"no"}', /acceptSourceToken must be true or false/],
    ] as const) {
      assert.throws(
        () => parseStreamConfig(text, "relay.json"),
        (err: Error & { code?: string }) => err.code === "DS_CONFIG" && why.test(err.message),
        text,
      );
    }
    const good = { version: 1, stream: "s", service: "ssh", credentials: config.credentials };
    assert.deepEqual(parseStreamConfig(JSON.stringify(good), "relay.json"), good);
  });

  it("reads a stream bound to a Device without a destination credential, and checks the binding's shape", () => {
    const sha = tokenSha256(source);
    const base = { version: 1, stream: "ns/s", service: "ssh", credentials: [{ role: "source", sha256: sha }] };
    const device = { namespace: "ns", name: "edge-1", uid: "0b6f7c1e-1d2a", publicKeySHA256: "ab".repeat(32) };
    assert.deepEqual(parseStreamConfig(JSON.stringify({ ...base, device }), "relay.json").device, device);
    assert.throws(() => parseStreamConfig(JSON.stringify(base), "relay.json"), /needs a destination entry/);
    for (const [bad, why] of [
      [{ ...device, namespace: "Not_A_Namespace" }, /device.namespace must be a namespace/],
      [{ ...device, name: "" }, /device.name must be a Device's name/],
      [{ ...device, uid: "../etc" }, /device.uid must be a UID/],
      [{ ...device, publicKeySHA256: "xyz" }, /device.publicKeySHA256 must be 64 hex digits/],
      [{ ...device, role: "admin" }, /device.role is not a field/],
      ["edge-1", /device must be an object/],
    ] as const) {
      assert.throws(() => parseStreamConfig(JSON.stringify({ ...base, device: bad }), "relay.json"), why);
    }
  });
});
