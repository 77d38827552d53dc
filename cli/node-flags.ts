// Node.js (V8) flags every devicestreams process runs with. They must be on node's command line
// (V8 reads them when it sizes the heap, and Node refuses them in NODE_OPTIONS), so each launcher
// carries them: the image's ENTRYPOINT, the shebang of both executables, and the test and
// benchmark launchers, which import this list. test/charts/dockerfile.test.ts keeps them equal.
//
// --initial-old-space-size=64: the byte path allocates a fresh 16-64 KiB buffer per message at
// several places (Node's socket and HTTP/2 reads, grpc-js's reassembly), and with V8's default
// starting limit each component ran ~100 full mark-compacts per GB moved, a quarter of its CPU.
// A 64 MB starting limit roughly halved them: CPU per GB 14.8 -> 10.5 and one-connection
// throughput +40 % in the same benchmark run, with RSS per idle connection unchanged
// (docs/benchmarks.md, "What we tried").
export const nodeFlags: readonly string[] = ["--initial-old-space-size=64"];
