// A way from the driver to the target: direct TCP, our tunnel, or a baseline forwarder. Every
// scenario runs against `port` the same way, so each figure has its baselines from the same run.
export interface BenchPath {
  /** Key in results.json and column in the table. */
  name: string;
  /** Where the driver connects on 127.0.0.1; bytes come out at the target. */
  port: number;
  /** The forwarding processes (not the driver or the target), for CPU time; children are included. */
  pids(): number[];
  /** The pid of each component by name, where a path has named parts (tunnel: relay, agent, client). */
  parts?(): Record<string, number>;
  /** Per-component RSS in KiB (tunnel: relay, agent, client); empty where not measured. */
  rss(): Record<string, number>;
  /** Free-text details (cipher negotiated, socat options). */
  detail: string;
  stop(): Promise<void>;
}
