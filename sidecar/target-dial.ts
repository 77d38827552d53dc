// Dials a local target named by the allow-list, with a deadline, and names the failure so the
// person at the other end of the tunnel learns what went wrong on the device.
import { connect, type Socket } from "node:net";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { sharedReadBuffer } from "../transport/socket-reads.ts";
import type { Target } from "./allow-list.ts";

export function dialTarget(service: string, target: Target, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: sharedReadBuffer,
    });
    socket.pause(); // until bridged: its reads land in a buffer shared by every target socket
    const where = `service "${service}" (${target.host}:${target.port} on the device)`;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DeviceStreamsError("DS_TARGET_TIMEOUT", `${where} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = err.code === "ECONNREFUSED" ? "DS_TARGET_REFUSED" : "DS_TARGET_UNREACHABLE";
      const hint = err.code === "ECONNREFUSED" ? "; is the service running on the device?" : "";
      reject(new DeviceStreamsError(code, `${where}: ${err.message}${hint}`, { cause: err }));
    };
    socket.once("error", onError);
  });
}
