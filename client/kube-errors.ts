// What the kubectl plugin tells a user when the API server says no: which permission is missing,
// which object is absent, and what to do, with a DS_* code to search for.
import { KubeApiError } from "../kube/client.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";

/** `what` names the object for a 404 ("DeviceStream \"x\" in namespace \"y\""). */
export function explainKubeError(err: unknown, what: string, notFound?: () => DeviceStreamsError): unknown {
  if (!(err instanceof KubeApiError)) return err;
  if (err.status === 404 && notFound) return notFound();
  if (err.status === 403) {
    // The API server's own words name the user, verb, resource and namespace.
    const m =
      /User "([^"]*)" cannot ([\w-]+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]+)")?/.exec(
        err.message,
      );
    const grant = m
      ? `"${m[2]}" on ${m[4] ? `${m[3]}.${m[4]}` : m[3]}${m[5] ? ` in namespace "${m[5]}"` : ""} for ${m[1]}`
      : "the permission named above";
    return new DeviceStreamsError(
      "DS_FORBIDDEN",
      `Kubernetes RBAC forbids this (${what}): ${err.message.replace(/^\w+ \S+: 403 /, "")}; ask your cluster admin for a Role granting ${grant} (docs/kubectl-plugin.md lists the rules the plugin needs)`,
      { cause: err },
    );
  }
  if (err.status === 401) {
    return new DeviceStreamsError(
      "DS_UNAUTHORIZED",
      `the API server did not accept your credentials (${what}); log in again or check --kubeconfig / --context`,
      { cause: err },
    );
  }
  if (err.status === 0) {
    return new DeviceStreamsError("DS_KUBE_UNREACHABLE", `${err.message} (check --kubeconfig / --context)`, {
      cause: err,
    });
  }
  return err;
}
