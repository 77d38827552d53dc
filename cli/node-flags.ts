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
// --max-semi-space-size=8: V8 otherwise grows the young generation to tens of MiB under
// connection churn, and the relay's peak RSS in the smoke flood (bench/flood.ts) went from
// 283/323 MiB to 214/241 MiB of its 256 MiB Pod limit; bulk CPU per GB was no worse (9.4 vs 10.0).
export const nodeFlags: readonly string[] = ["--initial-old-space-size=64", "--max-semi-space-size=8"];
