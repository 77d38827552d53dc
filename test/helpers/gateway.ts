// Starts `devicestreams gateway` as a real process on loopback, as the data-plane tests and the
// benchmark use it.
import { ComponentProcess } from "./component-process.ts";

export interface Gateway {
  process: ComponentProcess;
  port: number;
  metricsPort: number;
  address: string;
}

export async function startGateway(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Gateway> {
  const process = new ComponentProcess(
    "gateway",
    ["gateway", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", ...args],
    env,
  );
  try {
    const m = await process.waitFor(/ready port=(\d+) metricsPort=(\d+)/);
    return { process, port: Number(m[1]), metricsPort: Number(m[2]), address: `127.0.0.1:${m[1]}` };
  } catch (err) {
    await process.stop();
    throw err;
  }
}
