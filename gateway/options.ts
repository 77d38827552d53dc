// `devicestreams gateway` flags: where it listens, what it routes and its limits.
import type { OptionSpecs } from "../runtime/options.ts";
import { defaultRelayUpstream } from "./routes.ts";

export const gatewayOptionSpecs = {
  listen: {
    kind: "address",
    description: "TLS from devices and users, routed by server name (the Service maps port 443 here)",
    default: "0.0.0.0:8443",
  },
  "metrics-listen": {
    kind: "address",
    description: "`/metrics`, `/healthz`, `/readyz` (plain HTTP)",
    default: "0.0.0.0:9090",
  },
  route: {
    kind: "list",
    placeholder: "NAME=HOST:PORT",
    description:
      "an exact route, e.g. the hub's `hub.example.com=devicestreams-hub.devicestreams.svc:8444`; repeatable",
  },
  "routes-file": {
    kind: "file",
    description: "more exact routes, one `name=host:port` a line (`#` comments); reloaded when it changes",
  },
  "relay-domain": {
    kind: "string",
    description:
      "route `<stream>.<namespace>.<relay-domain>` to that stream's relay (e.g. `relay.example.com`); unset: exact routes only",
  },
  "relay-upstream": {
    kind: "string",
    placeholder: "HOST:PORT",
    description: "where a relay name goes; `{stream}` and `{namespace}` are filled in",
    default: defaultRelayUpstream,
  },
  "handshake-timeout": {
    kind: "duration",
    description: "close a connection that has not sent its whole ClientHello by then",
    default: "5s",
  },
  "connect-timeout": { kind: "duration", description: "give up connecting to the upstream after", default: "5s" },
  "max-connections": { kind: "integer", min: 1, description: "connections open at once", default: "20000" },
  "max-connections-per-source": {
    kind: "integer",
    min: 1,
    description: "connections open at once from one IP address",
    default: "1000",
  },
  "max-client-hello-bytes": {
    kind: "integer",
    min: 512,
    max: 65_536,
    description: "bytes buffered while reading a ClientHello (record headers included)",
    default: "16389",
  },
  "drain-timeout": {
    kind: "duration",
    description:
      "on SIGTERM, stop accepting and let open connections finish for up to this; a second signal stops at once",
    default: "30s",
  },
} satisfies OptionSpecs;
