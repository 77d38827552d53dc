// Single-stream mode (--config, --tls-cert, --tls-key): the relay as it always was, one stream
// whatever the server name a client sends. A changed relay.json applies to the running stream;
// one that is invalid, or changes what cannot change live, is refused and the stream keeps the one
// it has.
import { DeviceStreamsError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { readPem } from "../runtime/tls.ts";
import { watchConfigFile } from "./config-reload.ts";
import type { RelayMetrics } from "./metrics.ts";
import type { RelayLimits } from "./pairing.ts";
import { loadStreamConfig, parseStreamConfig, type StreamConfig } from "./stream-config.ts";
import { StreamRuntime } from "./stream-runtime.ts";
import type { AccessReviewer } from "./user-access.ts";

export interface SingleStreamOptions {
  configPath: string;
  certPath: string | undefined;
  keyPath: string | undefined;
  deviceCa: string | undefined;
  flagLimits: RelayLimits;
  lifetimeMs: number;
  accessTtlMs: number;
  metrics: RelayMetrics;
  log: Logger;
}

export interface SingleStream {
  /** relay.json as read at start. */
  config: StreamConfig;
  tls: { certPem: Buffer; keyPem: Buffer };
  /** Starts following relay.json, with the reviewer made from the relay's certificate. */
  start(reviewer: AccessReviewer | undefined): StreamRuntime;
  close(): void;
}

/** Reads the stream's files; nothing runs until `start`. */
export function loadSingleStream(o: SingleStreamOptions): SingleStream {
  if (!o.certPath || !o.keyPath) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      "--config needs --tls-cert and --tls-key, the relay's certificate and key",
    );
  }
  const loaded = loadStreamConfig(o.configPath);
  const tls = { certPem: readPem(o.certPath, "relay certificate"), keyPem: readPem(o.keyPath, "relay key") };
  const device = loaded.config.device;
  if (device && !o.deviceCa) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `${o.configPath} binds the stream to Device ${device.namespace}/${device.name}: give --device-ca, the CA its certificate chains to`,
    );
  }
  let close = () => {};
  const start = (reviewer: AccessReviewer | undefined) => {
    const stream = new StreamRuntime({ ...o, config: loaded.config, reviewer });
    const reload = (text: string) => {
      let next: StreamConfig;
      try {
        next = parseStreamConfig(text, o.configPath);
      } catch (err) {
        o.metrics.configReloads.inc({ result: "refused" });
        o.log.warn("changed relay.json refused; keeping the one in use", { reason: (err as Error).message });
        return;
      }
      const result = stream.reload(next);
      if (!result.ok) {
        o.metrics.configReloads.inc({ result: "refused" });
        o.log.warn("changed relay.json refused; keeping the one in use", {
          reason: `${o.configPath}: ${result.reason}`,
        });
        return;
      }
      o.metrics.configReloads.inc({ result: "applied" });
      o.log.info("relay.json reloaded; open connections keep running", {
        changed: result.changed.join(",") || "nothing",
      });
    };
    const watch = watchConfigFile(o.configPath, loaded.text, reload, (message) =>
      o.log.warn("cannot read relay.json; keeping the one in use", { reason: message }),
    );
    close = () => watch.close();
    return stream;
  };
  return { config: loaded.config, tls, start, close: () => close() };
}
