// Kubernetes' own name rules (k8s.io/apimachinery/pkg/util/validation): namespaces are DNS-1123
// labels, object names DNS-1123 subdomains. Checked before a name from outside (a network peer, a
// flag) reaches a request path, a cache key or a log line, so a name that Kubernetes could never
// hold is refused without any I/O.
import { DeviceStreamsError } from "../runtime/errors.ts";

export const maxLabelLength = 63;
export const maxSubdomainLength = 253;

const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `value` is not a DNS-1123 label, or undefined when it is one. */
export function dns1123LabelError(value: string): string | undefined {
  if (value.length > maxLabelLength) return `longer than ${maxLabelLength} characters`;
  if (!label.test(value)) {
    return "not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)";
  }
  return undefined;
}

/** Why `value` is not a DNS-1123 subdomain, or undefined when it is one. */
export function dns1123SubdomainError(value: string): string | undefined {
  if (value.length > maxSubdomainLength) return `longer than ${maxSubdomainLength} characters`;
  if (!subdomain.test(value)) {
    return (
      "not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter " +
      "or digit)"
    );
  }
  return undefined;
}

/** A name as it may appear in a message: quoted, escaped and cut short (it may come from anyone). */
export function quoteName(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

function invalid(what: string, value: string, why: string): DeviceStreamsError {
  return new DeviceStreamsError("DS_INVALID_NAME", `${what} ${quoteName(value)} is ${why}`);
}

/** Returns `value` when it can name a namespace; else throws DS_INVALID_NAME. */
export function checkNamespace(value: string, what = "namespace"): string {
  if (!value) throw invalid(what, value, "empty");
  const why = dns1123LabelError(value);
  if (why) throw invalid(what, value, why);
  return value;
}

/** Returns `value` when it can name an object (a Device, a DeviceStream, ...); else throws DS_INVALID_NAME. */
export function checkObjectName(value: string, what = "name"): string {
  if (!value) throw invalid(what, value, "empty");
  const why = dns1123SubdomainError(value);
  if (why) throw invalid(what, value, why);
  return value;
}

/** "namespace/name" split, or undefined unless both parts are valid names. */
export function parseObjectKey(key: string): { namespace: string; name: string } | undefined {
  const i = key.indexOf("/");
  if (i < 0) return undefined;
  const namespace = key.slice(0, i);
  const name = key.slice(i + 1);
  return dns1123LabelError(namespace) || dns1123SubdomainError(name) ? undefined : { namespace, name };
}
