// Reads and checks relay.json (its type: contract.ts). The operator writes it into the stream's
// Secret; the quick start writes it to a temp folder.
import { readFileSync } from "node:fs";
import type { Metadata } from "@grpc/grpc-js";
import { dns1123LabelError, dns1123SubdomainError } from "../kube/names.ts";
import { metadataKeys } from "../proto/metadata.ts";
import type { ErrorCode } from "../runtime/error-codes.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { type Role, tokenMatches, tokenRole } from "../transport/credentials.ts";
import type { StreamConfig } from "./contract.ts";

export type { StreamConfig };

const limitKeys = ["maxConnections", "bandwidthBytesPerSecond", "idleTimeoutMs", "dialTimeoutMs", "attachWaitMs"];

export function parseStreamConfig(text: string, source: string): StreamConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DeviceStreamsError("DS_CONFIG", `${source} is not JSON: ${(err as Error).message}`);
  }
  // Any JSON may arrive here (null, a list, credentials that are a number): refuse it, not crash.
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new DeviceStreamsError("DS_CONFIG", `${source} must hold a JSON object, not ${JSON.stringify(raw)}`);
  }
  const c = raw as Partial<StreamConfig>;
  const credentials = Array.isArray(c.credentials) ? c.credentials : [];
  const problems: string[] = [];
  if (c.version !== 1) problems.push(`version must be 1, not ${JSON.stringify(c.version)}`);
  if (typeof c.stream !== "string" || !c.stream) problems.push("stream must name the DeviceStream");
  if (typeof c.service !== "string" || !c.service) problems.push("service must name a service");
  if (c.services !== undefined) problems.push(...servicesProblems(c.services, c.service));
  if (c.expiresAt !== undefined && (typeof c.expiresAt !== "string" || Number.isNaN(Date.parse(c.expiresAt)))) {
    problems.push("expiresAt is not a time");
  }
  if (c.device !== undefined) problems.push(...deviceProblems(c.device));
  for (const role of ["source", "destination"] as const) {
    const creds = credentials.filter((x) => x?.role === role);
    // A stream bound to a Device has no destination token: its agent shows the Device's certificate.
    if (role === "destination" && c.device !== undefined && !creds.length) continue;
    if (!creds.length || creds.some((x) => typeof x.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(x.sha256))) {
      problems.push(`credentials needs a ${role} entry with a sha256`);
    }
  }
  if (c.serverNames !== undefined) problems.push(...serverNamesProblems(c.serverNames));
  if (c.acceptSourceToken !== undefined && typeof c.acceptSourceToken !== "boolean") {
    problems.push("acceptSourceToken must be true or false");
  }
  if (c.limits !== undefined) {
    if (typeof c.limits !== "object" || c.limits === null) problems.push("limits must be an object");
    else {
      for (const [k, v] of Object.entries(c.limits)) {
        const min = k === "maxConnections" ? 1 : 0;
        if (!limitKeys.includes(k)) problems.push(`limits.${k} is not a limit (known: ${limitKeys.join(", ")})`);
        else if (!Number.isSafeInteger(v) || (v as number) < min)
          problems.push(`limits.${k} must be an integer >= ${min}`);
      }
    }
  }
  if (problems.length) throw new DeviceStreamsError("DS_CONFIG", `${source}: ${problems.join("; ")}`);
  return c as StreamConfig;
}

/** The CRD's bound: enough for a device's handful of services, small enough to list in a message. */
export const maxServicesPerStream = 16;
const serviceName = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function servicesProblems(services: unknown, service: unknown): string[] {
  if (!Array.isArray(services) || !services.length || services.length > maxServicesPerStream) {
    return [`services must be a list of 1 to ${maxServicesPerStream} service names`];
  }
  const out: string[] = [];
  if (services.some((s) => typeof s !== "string" || !serviceName.test(s))) {
    out.push("services must hold allow-list names (lowercase letters, digits and '-', up to 63 characters)");
  }
  if (new Set(services).size !== services.length) out.push("services must not name a service twice");
  if (services[0] !== service) out.push("services must start with service (the one for clients that name none)");
  return out;
}

/** A certificate's handful of names; a pool routes by them, so each must be a plain DNS name. */
export const maxServerNames = 16;

function serverNamesProblems(names: unknown): string[] {
  if (!Array.isArray(names) || !names.length || names.length > maxServerNames) {
    return [`serverNames must be a list of 1 to ${maxServerNames} DNS names`];
  }
  const bad = names.filter((n) => typeof n !== "string" || n.toLowerCase() !== n || dns1123SubdomainError(n));
  if (bad.length)
    return [`serverNames must hold lowercase DNS names, not ${bad.map((n) => JSON.stringify(n)).join(", ")}`];
  if (new Set(names).size !== names.length) return ["serverNames must not name a name twice"];
  return [];
}

/** The stream's services, the one for clients that name none first. */
export function streamServices(config: Pick<StreamConfig, "service" | "services">): string[] {
  return config.services?.length ? config.services : [config.service];
}

function deviceProblems(d: unknown): string[] {
  if (typeof d !== "object" || d === null || Array.isArray(d)) return ["device must be an object"];
  const b = d as Record<string, unknown>;
  const out: string[] = [];
  for (const k of Object.keys(b)) {
    if (!["namespace", "name", "uid", "publicKeySHA256"].includes(k)) out.push(`device.${k} is not a field`);
  }
  if (typeof b.namespace !== "string" || dns1123LabelError(b.namespace))
    out.push("device.namespace must be a namespace");
  if (typeof b.name !== "string" || dns1123SubdomainError(b.name)) out.push("device.name must be a Device's name");
  if (b.uid !== undefined && (typeof b.uid !== "string" || !/^[a-z0-9][-a-z0-9]{0,62}$/.test(b.uid))) {
    out.push("device.uid must be a UID");
  }
  if (
    b.publicKeySHA256 !== undefined &&
    (typeof b.publicKeySHA256 !== "string" || !/^[0-9a-f]{64}$/.test(b.publicKeySHA256))
  ) {
    out.push("device.publicKeySHA256 must be 64 hex digits");
  }
  return out;
}

/** The config, and the text it was read from (to tell a later change from the same file). */
export function loadStreamConfig(path: string): { config: StreamConfig; text: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new DeviceStreamsError("DS_CONFIG", `cannot read the stream config ${path}: ${(err as Error).message}`);
  }
  return { config: parseStreamConfig(text, path), text };
}

export type AuthResult = { ok: true } | { ok: false; code: ErrorCode; message: string };

/** Checks the bearer token in a call's metadata against the credential of the expected role. */
export function authenticate(config: StreamConfig, role: Role, metadata: Metadata, now = Date.now()): AuthResult {
  const header = metadata.get(metadataKeys.authorization)[0];
  const token = typeof header === "string" && header.startsWith("Bearer ") ? header.slice(7) : undefined;
  const other = role === "source" ? "destination" : "source";
  if (!token) {
    return {
      ok: false,
      code: "DS_AUTH_MISSING",
      message: `no credential was presented; pass the stream's ${role} token (Authorization: Bearer ...)`,
    };
  }
  // More than one digest per role during a rotation: the old token and the new one both hold.
  if (!config.credentials.some((c) => c.role === role && tokenMatches(token, c.sha256))) {
    // The caller is not authenticated: the message must not tell it which stream lives here. The
    // role mix-up hint only restates the token's own prefix, so it reveals nothing.
    const hint =
      tokenRole(token) === other
        ? `this is the ${other} credential; the ${role} side needs the ${role} token`
        : `fetch the stream's ${role} token again (a recreated stream has new tokens)`;
    return {
      ok: false,
      code: "DS_AUTH_INVALID",
      message: `the ${role} credential is not valid for this relay; ${hint}`,
    };
  }
  if (role === "source" && config.acceptSourceToken === false) {
    return {
      ok: false,
      code: "DS_SOURCE_TOKEN_DISABLED",
      message: `stream ${config.stream} does not accept its source token: connect with your own Kubernetes credentials (a kubeconfig that yields a bearer token, granted the verb connect on devicestreams/${config.stream.split("/").pop()}), or have the stream created with spec.access.sourceToken: true`,
    };
  }
  return expiry(config, now);
}

/** Refuses every credential, token or certificate, once the stream's time is up. */
export function expiry(config: StreamConfig, now = Date.now()): AuthResult {
  if (config.expiresAt && now >= Date.parse(config.expiresAt)) {
    return {
      ok: false,
      code: "DS_AUTH_EXPIRED",
      message: `the credentials of stream ${config.stream} expired at ${config.expiresAt}; open a new stream`,
    };
  }
  return { ok: true };
}
