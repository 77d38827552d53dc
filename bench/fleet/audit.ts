// API requests the operator made, counted by the API server itself: an audit policy that logs
// only the operator's ServiceAccount at level Metadata, one line per finished request. Nothing in
// the operator is trusted to count its own requests.
import { readFileSync } from "node:fs";

export function operatorAuditPolicy(user: string): string {
  // JSON is YAML. ResponseStarted is left out so a watch counts once, like any other request.
  return JSON.stringify({
    apiVersion: "audit.k8s.io/v1",
    kind: "Policy",
    omitStages: ["RequestReceived", "ResponseStarted"],
    rules: [
      // DEVICESTREAMS_AUDIT_BODIES=1: what each status write sent, to see why a stream needed it.
      ...(process.env.DEVICESTREAMS_AUDIT_BODIES
        ? [
            {
              level: "Request",
              users: [user],
              resources: [{ group: "devicestreams.io", resources: ["devicestreams/status", "devicestreams"] }],
            },
          ]
        : []),
      { level: "Metadata", users: [user] },
      { level: "None" },
    ],
  });
}

export interface RequestCounts {
  /** Lines read: pass as `from` to count only what came after. */
  lines: number;
  /** "verb resource[/subresource]" -> requests. */
  byKind: Record<string, number>;
  /** HTTP codes other than 2xx: "verb resource code" -> requests. */
  failures: Record<string, number>;
  total: number;
}

interface AuditLine {
  verb?: string;
  stage?: string;
  objectRef?: { resource?: string; subresource?: string };
  responseStatus?: { code?: number };
}

/** Requests in the audit log, past its first `from` lines. */
export function countRequests(auditLogPath: string, from = 0): RequestCounts {
  const lines = readFileSync(auditLogPath, "utf8")
    .split("\n")
    .filter((l) => l);
  const out: RequestCounts = { lines: lines.length, byKind: {}, failures: {}, total: 0 };
  for (const line of lines.slice(from)) {
    const e = JSON.parse(line) as AuditLine;
    if (e.stage !== "ResponseComplete" && e.stage !== "Panic") continue;
    const res = e.objectRef?.resource ?? "nonResource";
    const kind = `${e.verb} ${res}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`;
    out.byKind[kind] = (out.byKind[kind] ?? 0) + 1;
    out.total++;
    const code = e.responseStatus?.code ?? 0;
    if (code < 200 || code >= 300) {
      const f = `${kind} ${code}`;
      out.failures[f] = (out.failures[f] ?? 0) + 1;
    }
  }
  return out;
}

/** Requests that scale with the streams: all but the lease, lists and watches (a fixed cost per replica). */
export function perStream(counts: RequestCounts, streams: number): { total: number; byKind: Record<string, number> } {
  const byKind: Record<string, number> = {};
  let total = 0;
  for (const [kind, n] of Object.entries(counts.byKind)) {
    const [verb, res] = kind.split(" ");
    if (verb === "list" || verb === "watch" || res === "leases") continue;
    byKind[kind] = Math.round((n / streams) * 100) / 100;
    total += n;
  }
  return { total: Math.round((total / streams) * 100) / 100, byKind };
}
