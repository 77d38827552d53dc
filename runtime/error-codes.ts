// Every DS_* code, once: what causes it and what the user should do. docs/errors.md is generated
// from this table (`npm run generate`), and `new DeviceStreamsError(code, ...)` accepts only a code
// registered here, so a typo fails `tsc` and a new code cannot go undocumented. The message at the
// call site still says the specific cause and remedy; this says what the code means everywhere.
import type { status } from "@grpc/grpc-js";

/** Sections of docs/errors.md, in order: who reports the code. */
export const errorAreas = {
  tunnel: "Tunnel: relay, agent and client",
  hub: "Hub and enrolment",
  gateway: "Gateway (logged by `devicestreams gateway`; the client sees its connection closed)",
  plugin: "kubectl plugin and Kubernetes API",
  web: "Browser terminal (`kubectl devicestream web`)",
  setup: "Command line and configuration",
} as const;

export interface ErrorCodeInfo {
  area: keyof typeof errorAreas;
  /** What happened (Markdown, one line). */
  cause: string;
  /** What the user should do (Markdown, one line). */
  action: string;
}

export const errorCodes = {
  DS_GATEWAY_NOT_TLS: {
    area: "gateway",
    cause: "a connection to the gateway did not start with a TLS handshake (plain HTTP, SSH, SSLv2 or random bytes)",
    action: "dial the gateway with TLS: `devicestreams connect`, the agent and `kubectl devicestream` all do",
  },
  DS_GATEWAY_BAD_CLIENT_HELLO: {
    area: "gateway",
    cause: "the TLS ClientHello was malformed or larger than `--max-client-hello-bytes`",
    action: "use a standard TLS client; if a real client's ClientHello is refused as too large, raise the limit",
  },
  DS_GATEWAY_NO_SERVER_NAME: {
    area: "gateway",
    cause: "the ClientHello names no server (no SNI) or a name that is not a DNS name",
    action:
      "dial the gateway by the stream's or hub's name, or pass `--server-name` with it (an IP address sends no SNI)",
  },
  DS_GATEWAY_UNKNOWN_NAME: {
    area: "gateway",
    cause: "the server name is neither an exact route nor `<stream>.<namespace>.<relay-domain>`",
    action: "check the name against the stream's `status.relay.tlsServerName` and the gateway's `--relay-domain`",
  },
  DS_GATEWAY_HANDSHAKE_TIMEOUT: {
    area: "gateway",
    cause: "a connection sent no complete ClientHello within `--handshake-timeout`",
    action: "none for a real client on a working network; many of these are a scan or a slowloris attempt",
  },
  DS_GATEWAY_OVER_CAPACITY: {
    area: "gateway",
    cause: "the gateway holds `--max-connections` connections, or the source address `--max-connections-per-source`",
    action: "retry later; raise the cap or add replicas if the load is legitimate",
  },
  DS_GATEWAY_UPSTREAM_FAILED: {
    area: "gateway",
    cause:
      "the relay or hub a name routes to refused the connection, failed or did not accept within `--connect-timeout`",
    action: "check that the stream's relay Pod is ready (`kubectl get devicestream`); it may still be starting",
  },
  DS_GATEWAY_ROUTES_INVALID: {
    area: "setup",
    cause: "a `--route` or a line of `--routes-file` is not `name=host:port`, or a name is routed twice",
    action: "fix the route named in the message; a reloaded file that fails keeps the last good routes",
  },
  DS_AUTH_MISSING: {
    area: "tunnel",
    cause: "a call reached the relay without a stream credential (no `Authorization: Bearer` token)",
    action: "pass the stream's token: the client needs the _source_ token, the agent the _destination_ token",
  },
  DS_AUTH_INVALID: {
    area: "tunnel",
    cause: "the token is not this stream's (or is the other role's)",
    action: "fetch the stream's token again; the client needs the _source_ token, the agent the _destination_ token",
  },
  DS_AUTH_EXPIRED: {
    area: "tunnel",
    cause: "the stream's credentials expired",
    action: "open a new stream",
  },
  DS_SOURCE_TOKEN_DISABLED: {
    area: "tunnel",
    cause:
      "the source token was presented, but the stream accepts only users' own Kubernetes credentials (`spec.access.sourceToken` is false, the default)",
    action:
      "use a kubeconfig that yields a bearer token (token, exec or OIDC) with `connect` on the stream, or create the stream with `spec.access.sourceToken: true`",
  },
  DS_USER_UNAUTHENTICATED: {
    area: "tunnel",
    cause:
      "the Kubernetes API server did not accept the user's token (expired, revoked, or its ServiceAccount deleted)",
    action: "log in again (refresh the kubeconfig's credentials) and connect again",
  },
  DS_USER_FORBIDDEN: {
    area: "tunnel",
    cause: "RBAC does not grant the user the verb `connect` on `devicestreams/<name>` in the stream's namespace",
    action:
      "ask your cluster admin to bind the `devicestreams-user` ClusterRole ([client/rbac.yaml](kubectl-plugin.md#rbac)) in that namespace",
  },
  DS_USER_TOKEN_UNSUPPORTED: {
    area: "tunnel",
    cause:
      "a Kubernetes token was presented to a relay that cannot review it (a static relay, without `--access-review-address`)",
    action: "present the stream's source token (`devicestreams connect --token-file`)",
  },
  DS_ACCESS_REVIEW_UNAVAILABLE: {
    area: "tunnel",
    cause:
      "the relay could not ask the operator whether the user may connect (the hub or the API server did not answer); this says nothing about the user's permissions",
    action: "retry in a moment; if it lasts, check the operator's log and that the relay reaches the hub",
  },
  DS_ACCESS_REVIEW_REFUSED: {
    area: "hub",
    cause:
      "the hub refused an access review: the caller presented no relay certificate of the operator's CA (a device certificate, none, or another CA's), or its stream no longer exists",
    action: "nothing for a relay the operator made (its stream ended); anything else is not a relay",
  },
  DS_DEVICE_NOT_ATTACHED: {
    area: "tunnel",
    cause: "no agent is attached to the relay",
    action: "check the agent runs and can reach the relay (its `/readyz` says why not)",
  },
  DS_DEVICE_DETACHED: {
    area: "tunnel",
    cause: "the agent left the relay while a new connection waited for it to reach the target",
    action: "connect again; if it repeats, check the agent's log and its network",
  },
  DS_DEVICE_REFUSED: {
    area: "tunnel",
    cause:
      "the device's agent refused the stream: the service is not in its allow-list, or the Device is disabled (the agent's reason is quoted)",
    action: "add the service to the agent's `--allow` / `--config` (or enable the Device), then open a new stream",
  },
  DS_SERVICE_NOT_ALLOWED: {
    area: "tunnel",
    cause: "the agent was asked for a service that is not in its allow-list (the message lists what it has)",
    action: "add it to the agent's `--allow` / `--config`, or ask for a service the device offers",
  },
  DS_WRONG_SERVICE: {
    area: "tunnel",
    cause:
      "the relay asked the agent for a service its stream does not carry (a relay that is not the offered stream's, or a bug); the agent dials only the services of the stream it accepted",
    action: "nothing on the device; if it repeats, report it with the relay's and the agent's logs",
  },
  DS_SERVICE_NOT_IN_STREAM: {
    area: "tunnel",
    cause:
      "the client asked for a service the stream does not carry (its `spec.services`); the relay refused before asking the device",
    action:
      "name one of the stream's services (the message lists them: `-L 2222:ssh`, `curl --socks5-hostname … http://web/`), or open a stream with the service",
  },
  DS_PORT_OUT_OF_RANGE: {
    area: "tunnel",
    cause:
      "the client asked for a port that is not among the service's ports in the device's allow-list (a range such as `30000-30100`), or named none for a service of several ports",
    action: "ask for a port the service has (the message says which), e.g. `-L 30005:ftp:30005`",
  },
  DS_SOCKS_REQUEST_INVALID: {
    area: "tunnel",
    cause:
      "a local client of `connect --socks5` sent something other than a SOCKS5 CONNECT or an HTTP CONNECT request (another SOCKS version or command, an authentication method other than none, a malformed or oversized request)",
    action:
      "use SOCKS5 without authentication (`curl --socks5-hostname`, `nc -X 5`) or HTTP CONNECT, and name the service as the host",
  },
  DS_SOCKS_ADDRESS_NOT_SERVICE: {
    area: "tunnel",
    cause:
      "a local client of `connect --socks5` asked for an IP address: the listener reaches services by name only (SOCKS reply 0x08, HTTP 400)",
    action:
      "let the client send the host name (`curl --socks5-hostname`, `socks5h://`, a browser's remote DNS setting); the host is the service's name",
  },
  DS_SOCKS_CLIENT_LIMIT: {
    area: "tunnel",
    cause: "`connect --socks5` already serves its maximum of local clients at once; the new one was refused",
    action: "close some local connections, or raise `--max-local-clients`",
  },
  DS_SOCKS_HANDSHAKE_TIMEOUT: {
    area: "tunnel",
    cause: "a local client of `connect --socks5` did not finish its SOCKS or HTTP CONNECT request in time",
    action: "none for a real client; a port scanner or a client that speaks another protocol looks like this",
  },
  DS_SESSION_REPLACED: {
    area: "tunnel",
    cause: "a newer session of the same device took over at the relay or the hub, ending this one",
    action: "nothing after an agent restart; two agents running as one device replace each other: run one",
  },
  DS_DIAL_TIMEOUT: {
    area: "tunnel",
    cause: "the agent did not reach the service's target within the relay's `--dial-timeout`",
    action: "check that the service runs on the device and answers; raise `--dial-timeout` for a slow one",
  },
  DS_DIAL_FAILED: {
    area: "tunnel",
    cause: "the agent could not reach the target and sent no code saying why (an agent of another version)",
    action: "read the agent's log for the cause",
  },
  DS_TARGET_REFUSED: {
    area: "tunnel",
    cause: "the target on the device refused the connection (nothing listens at its address)",
    action: "is the service running on the device? Check its address in the allow-list",
  },
  DS_TARGET_UNREACHABLE: {
    area: "tunnel",
    cause: "the agent could not reach the target's host (no route, unknown name, …)",
    action: "check the target's address in the allow-list and the device's network",
  },
  DS_TARGET_TIMEOUT: {
    area: "tunnel",
    cause: "the target did not answer within the agent's `--dial-timeout`",
    action: "is the service running on the device, and answering?",
  },
  DS_CONNECTION_LIMIT: {
    area: "tunnel",
    cause: "the stream carries its maximum of connections",
    action: "close some, or raise the stream's `maxConnections`",
  },
  DS_IDLE_TIMEOUT: {
    area: "tunnel",
    cause: "a connection moved no bytes for the stream's idle timeout and was reset",
    action: "connect again; for sessions that sit idle, raise the idle timeout or send keepalives",
  },
  DS_STREAM_EXPIRED: {
    area: "tunnel",
    cause:
      "the stream reached a limit (lifetime, `expiresAt`, idle time, bytes per day): its connections end, new ones are refused",
    action: "open a new stream",
  },
  DS_STREAM_MOVED: {
    area: "tunnel",
    cause:
      "the pool relay stopped serving the stream (its folder was removed: the stream was deleted or moved to another relay); its connections were reset",
    action: "connect again: the stream's address leads to the relay that serves it now, if any",
  },
  DS_UNKNOWN_CONNECTION: {
    area: "tunnel",
    cause: "the agent answered for a connection the relay no longer waits for (it timed out, or its client left)",
    action: "nothing: its client was told already; many of them mean targets slower than `--dial-timeout`",
  },
  DS_PEER_CLOSED: {
    area: "tunnel",
    cause: "the other side left after closing its half of the connection, so it can no longer answer",
    action: "nothing: the other side had finished",
  },
  DS_PEER_LOST: {
    area: "tunnel",
    cause: "the other side's process or network went away",
    action: "retry; check the agent",
  },
  DS_PEER_RESET: {
    area: "tunnel",
    cause: "the other end reset the connection, or closed it without finishing",
    action: "nothing if the application meant to; else read the other end's log",
  },
  DS_SOCKET_ERROR: {
    area: "tunnel",
    cause: "a local TCP socket failed (the message is the system's error)",
    action: "act on the system error it names",
  },
  DS_CANCELLED: {
    area: "tunnel",
    cause: "the tunnel's call was cancelled on this side (the process is stopping it)",
    action: "nothing, unless unexpected: then find what stopped the client or agent",
  },
  DS_RELAY_DRAINING: {
    area: "tunnel",
    cause: "the relay is shutting down: open connections may finish, new ones are refused",
    action: "connect again in a moment",
  },
  DS_RELAY_SHUTDOWN: {
    area: "tunnel",
    cause: "the relay shut down and ended the connections still open",
    action: "connect again to reach the new relay",
  },
  DS_RELAY_UNAVAILABLE: {
    area: "tunnel",
    cause: "the relay cannot be reached",
    action: "check `--relay`, that the relay runs, and that `--ca` names its CA",
  },
  DS_PROXY_AUTH: {
    area: "tunnel",
    cause: "the HTTP proxy (`--proxy` or `HTTPS_PROXY`) refused the credentials given, or asked for some (407)",
    action: 'put one line "user:password" for the proxy in the file named by `--proxy-auth-file`',
  },
  DS_PROXY_REFUSED: {
    area: "tunnel",
    cause: "the HTTP proxy refused to CONNECT to the hub or relay (its answer is quoted)",
    action: "ask the proxy's administrator to allow CONNECT to that host and port (often only 443 is allowed)",
  },
  DS_PROXY_UNREACHABLE: {
    area: "tunnel",
    cause: "the HTTP proxy itself cannot be reached",
    action: "check the proxy address in `--proxy` / `HTTPS_PROXY`, or unset it where no proxy is needed",
  },
  DS_RELAY_LOST: {
    area: "tunnel",
    cause: "the connection to the relay dropped (relay restarted, network lost, keepalive timeout)",
    action: "connect again",
  },
  DS_TLS_UNTRUSTED: {
    area: "tunnel",
    cause: "the relay's certificate does not chain to the CA given with `--ca`",
    action: "pass the stream's own `ca.crt`",
  },
  DS_TLS_NAME_MISMATCH: {
    area: "tunnel",
    cause: "the relay's certificate does not name the address dialled",
    action: "dial a name it lists, or pass `--server-name`",
  },
  DS_PROTOCOL: {
    area: "tunnel",
    cause:
      "a side broke the wire protocol: a malformed frame, an Accept without a connection id, an agent that sent no hello, an enrolment answer without a certificate",
    action: "a bug or a foreign client; see [the wire protocol](wire-protocol.md)",
  },
  DS_ENROLLMENT_REFUSED: {
    area: "hub",
    cause:
      "the hub refused to enrol: no such Device, a wrong or expired token, a Device already enrolled (and no re-enrolment asked for) or disabled (one answer for all, since anyone may call Enroll)",
    action:
      "an administrator reads the Device's `EnrollmentRefused` Events (or the operator's log) for the precise reason; see [hub.md](hub.md#errors)",
  },
  DS_ENROLLMENT_RATE_LIMITED: {
    area: "hub",
    cause:
      "too many enrolment attempts from this address (the operator's `--hub-enroll-per-minute`, `--hub-enroll-burst`)",
    action: "nothing: the agent retries with backoff; many devices behind one NAT may need a higher limit",
  },
  DS_HELLO_INVALID: {
    area: "hub",
    cause:
      "the agent's hello advertises more services than a Device can list (256) or a service name that is not a DNS-1123 label of at most 63 characters; the hub ends the session",
    action: "trim or rename the agent's allow-list (`--allow`, `--config`)",
  },
  DS_INVALID_NAME: {
    area: "hub",
    cause: "a namespace or name sent to the hub is not a valid Kubernetes name (DNS-1123)",
    action: "fix `--device NAMESPACE/NAME`",
  },
  DS_ENROLLMENT_TOKEN_INVALID: {
    area: "hub",
    cause: "the token is not this Device's (another device's, a re-created one's, or one from an earlier enrolment)",
    action:
      "an administrator reads the token from the Secret the Device's `status.enrollment` names (in the operator's namespace)",
  },
  DS_ENROLLMENT_TOKEN_EXPIRED: {
    area: "hub",
    cause: "past its `expiresAt`",
    action: "the leader writes a new one; read the Secret again",
  },
  DS_ENROLLMENT_TOKEN_REQUIRED: {
    area: "hub",
    cause: "no stored certificate and no (readable) `--enrollment-token-file`",
    action: "give the token for the first start",
  },
  DS_DEVICE_DISABLED: {
    area: "hub",
    cause: "the Device has `spec.disabled`: enrolment and sessions are refused, an open session ends",
    action: "enable it",
  },
  DS_BAD_CSR: {
    area: "hub",
    cause: "the agent's certificate request is not a PEM CSR the hub can sign",
    action: "a bug, or a damaged `device.key` in the agent's `--state-dir`: remove it and start the agent again",
  },
  DS_DEVICE_IDENTITY_REQUIRED: {
    area: "tunnel",
    cause:
      "the device side of a stream bound to an enrolled Device came without that Device's certificate (a destination token alone is not accepted)",
    action:
      "only the Device's own agent, in hub mode, may attach; a user holding the stream's Secret cannot, by design ([trust.md](trust.md))",
  },
  DS_DEVICE_IDENTITY_MISMATCH: {
    area: "tunnel",
    cause:
      "the device certificate is valid but names another Device, a re-created one (another UID) or a key the Device no longer holds",
    action: "check the agent serves the Device the stream names; after a re-enrolment, open a new stream",
  },
  DS_DEVICE_ALREADY_ATTACHED: {
    area: "tunnel",
    cause: "another device identity is attached to this stream; only the same identity may replace it",
    action: "stop the other agent, or open a new stream for this Device",
  },
  DS_DEVICE_CERT_REQUIRED: {
    area: "hub",
    cause: "a session without a device certificate",
    action: "enrol first (`--enrollment-token-file`)",
  },
  DS_DEVICE_CERT_INVALID: {
    area: "hub",
    cause: "a session with a certificate this hub's CA did not issue for a device",
    action: "check the agent dials this cluster's hub; enrol again with this cluster's token",
  },
  DS_DEVICE_REVOKED: {
    area: "hub",
    cause:
      "the Device the certificate names was deleted or re-created, or its key is not the one the Device enrolled with",
    action: "enrol again with the new Device's token; after a [re-enrolment](hub.md#re-enrolment), use the new key",
  },
  DS_RENEWAL_REFUSED: {
    area: "hub",
    cause: "renewal asked for another key",
    action:
      "to enrol a new key, an administrator sets `spec.identity.reenroll` to true ([hub.md](hub.md#re-enrolment))",
  },
  DS_HUB_UNAVAILABLE: {
    area: "hub",
    cause: "the hub cannot read or update Devices now (the Kubernetes API server did not answer)",
    action: "nothing: the agent retries; if it lasts, check the operator's log",
  },
  DS_HUB_INTERNAL: {
    area: "hub",
    cause: "enrolment failed for a reason the hub did not expect (quoted)",
    action: "the agent retries; if it lasts, report it with the operator's log",
  },
  DS_HUB_SHUTDOWN: {
    area: "hub",
    cause: "the hub replica holding the session is stopping",
    action: "nothing: the agent reconnects (to another replica)",
  },
  DS_HUB_LOST: {
    area: "hub",
    cause: "the hub ended the control session without saying why",
    action: "nothing: the agent reconnects; if it repeats, check the operator's log",
  },
  DS_NO_SUCH_DEVICE: {
    area: "plugin",
    cause: "`open` names a Device that does not exist in the namespace",
    action: "check the name with `kubectl get devices -n NAMESPACE`",
  },
  DS_DEVICE_OFFLINE: {
    area: "plugin",
    cause:
      "the device's agent is not connected: `open` timed out, or the stream failed at its connect timeout while the device was offline",
    action: "check that the device's agent runs and reaches the hub",
  },
  DS_OVER_QUOTA: {
    area: "plugin",
    cause:
      "a concurrent-stream cap (`--max-streams`, `--max-streams-per-namespace`) holds the stream back or failed it",
    action: "close streams you no longer need, or ask the platform team to raise the cap",
  },
  DS_FORBIDDEN: {
    area: "plugin",
    cause: "Kubernetes RBAC said no; the message names the verb, resource and namespace",
    action: "ask your cluster admin for that permission ([the rules the plugin needs](kubectl-plugin.md#rbac))",
  },
  DS_UNAUTHORIZED: {
    area: "plugin",
    cause: "the API server refused your credentials",
    action: "log in again, or check `--kubeconfig` / `--context`",
  },
  DS_KUBECONFIG: {
    area: "plugin",
    cause: "no usable kubeconfig: unreadable, or no current cluster",
    action: "pass `--kubeconfig FILE` or set `KUBECONFIG`, as for kubectl",
  },
  DS_KUBE_UNREACHABLE: {
    area: "plugin",
    cause: "the API server cannot be reached",
    action: "check `--kubeconfig` / `--context` and the network",
  },
  DS_KUBE_API: {
    area: "plugin",
    cause: "the API server answered with an error (its HTTP status and reason are quoted)",
    action: "act on the API server's reason; the operator retries conflicts, throttling and server errors",
  },
  DS_NO_SUCH_STREAM: {
    area: "plugin",
    cause: "no DeviceStream of that name in the namespace",
    action: "see `kubectl devicestream list`",
  },
  DS_STREAM_FAILED: {
    area: "plugin",
    cause: "the stream ended, phase Failed (its Ready condition's reason and message are quoted)",
    action: "fix the cause, then open a new stream",
  },
  DS_STREAM_NOT_READY: {
    area: "plugin",
    cause: "the relay (or its credentials Secret) did not become ready within `--wait`",
    action: "see `kubectl describe devicestream NAME`; try again",
  },
  DS_STREAM_CREDENTIALS: {
    area: "plugin",
    cause: "the stream's credentials Secret lacks a key the client needs",
    action: "the operator writes that Secret: check its log, then open a new stream",
  },
  DS_OPEN_TIMEOUT: {
    area: "plugin",
    cause: "`open --timeout` passed for another reason (the Ready condition is quoted)",
    action: "the stream stays open until its connect timeout; wait, or `close` it",
  },
  DS_RELAY_UNREACHABLE: {
    area: "plugin",
    cause: "no address to dial the relay from here (its name does not resolve, its Pod's IP is unknown)",
    action: "expose the relay (`spec.relay.exposure: LoadBalancer`), or pass `--relay-address host:port`",
  },
  DS_USAGE: {
    area: "setup",
    cause: "a flag or argument is missing or malformed (the message names it)",
    action: "fix it as the message says; `--help` lists the options",
  },
  DS_CONFIG: {
    area: "setup",
    cause:
      "a configuration input is unreadable or invalid: the relay's stream config, the agent's allow-list, a token file",
    action: "fix the file or flag the message names",
  },
  DS_TLS_FILE: {
    area: "setup",
    cause: "a certificate, key or CA file cannot be read",
    action: "check the path and that this user may read it",
  },
  DS_WEB_TOKEN: {
    area: "web",
    cause:
      "the terminal page was opened without its one-time token, with a wrong one, or with one already used (each URL opens once)",
    action:
      "open the URL `kubectl devicestream web` printed, in the browser that has not used it yet; for a new URL, run the command again",
  },
  DS_WEB_FORBIDDEN: {
    area: "web",
    cause:
      "a request to the terminal's server had no valid session cookie, came from another origin, or named another host (DNS rebinding)",
    action: "open the terminal only through the URL the command printed; nothing else may talk to its server",
  },
  DS_WEB_SESSION_LIMIT: {
    area: "web",
    cause: "the terminal's server already holds `--max-sessions` SSH sessions",
    action: "close a terminal tab, or run the command with a higher `--max-sessions`",
  },
  DS_WEB_BAD_MESSAGE: {
    area: "web",
    cause: "the browser sent a WebSocket message the terminal does not accept (malformed, unknown or out of bounds)",
    action: "reload the page; the page and the command must come from the same version",
  },
  DS_SSH_NO_IDENTITY: {
    area: "web",
    cause: "no usable SSH key: `--identity` unreadable or passphrase-protected, no agent, no unencrypted `~/.ssh/id_*`",
    action:
      "pass `--identity FILE` with an unencrypted key, or add the key to your agent (`ssh-add`) with `SSH_AUTH_SOCK` set",
  },
  DS_SSH_AUTH_FAILED: {
    area: "web",
    cause: "the device's sshd accepted none of the keys offered for the user (the message lists them)",
    action: "check `--user` and that the key is in that user's `authorized_keys` on the device",
  },
  DS_SSH_HOST_KEY_CHANGED: {
    area: "web",
    cause:
      "the device presented a host key other than the one known_hosts has for it: a reinstalled device, or someone in the middle",
    action:
      "find out why before going on; if the device was legitimately rekeyed, remove the old line (`ssh-keygen -R NAME -f FILE`) and accept the new key",
  },
  DS_SSH_HOST_KEY_REVOKED: {
    area: "web",
    cause: "the device presented a host key marked `@revoked` in known_hosts",
    action: "do not use that key; the device needs a new host key",
  },
  DS_SSH_HOST_KEY_DECLINED: {
    area: "web",
    cause: "the device's host key was not in known_hosts and you declined it on the page",
    action:
      "compare the fingerprint with the device's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` there), then try again",
  },
  DS_SSH_FAILED: {
    area: "web",
    cause:
      "the SSH connection failed before a shell opened (no SSH server at the stream's service, a protocol error, a timeout)",
    action:
      "check that the stream's service is the device's sshd (`kubectl get devicestream NAME -o yaml`) and the agent's log",
  },
  DS_DEMO_FAILED: {
    area: "setup",
    cause: "`devicestreams demo` got no right answer through its own tunnel",
    action: "read the demo's log for the part that failed",
  },
} satisfies Record<`DS_${string}`, ErrorCodeInfo>;

/**
 * A call that failed with a gRPC status whose details carry no DS_* code (a peer that is no relay
 * or hub, or grpc-js failing the call itself) keeps gRPC's own status name: DS_GRPC_UNIMPLEMENTED.
 */
export type GrpcStatusCode = `DS_GRPC_${keyof typeof status | number}`;
export const grpcStatusCodes: { pattern: string } & ErrorCodeInfo = {
  pattern: "DS_GRPC_<STATUS>",
  area: "tunnel",
  cause:
    "a gRPC call failed with status STATUS and no DS_* code: the peer is no relay or hub (or another version), or gRPC failed the call itself",
  action: "check the address names the relay (or hub) and that both ends run the same version",
};

export type RegisteredCode = keyof typeof errorCodes;
/** Every code this version reports. */
export type ErrorCode = RegisteredCode | GrpcStatusCode;

declare const unregistered: unique symbol;
/**
 * A code as another process sent it (a gRPC status, a Reset frame, an agent's refusal): one of
 * ours, or a code of a newer version that this one passes on unchanged. Only `peerCode` makes one.
 */
export type PeerCode = ErrorCode | (string & { readonly [unregistered]: true });

/** Takes a code received from a peer as it is; `ifEmpty` when the peer sent none. */
export function peerCode(code: string | null | undefined, ifEmpty: ErrorCode): PeerCode {
  return (code || ifEmpty) as PeerCode;
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCodes, code) || /^DS_GRPC_(?:[A-Z_]+|\d+)$/.test(code);
}
