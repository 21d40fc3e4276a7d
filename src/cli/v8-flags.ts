// Imported first by the CLI entry, so it runs before anything else allocates.
//
// V8 allocation-site pretenuring: once some allocation sites' objects survive a few young-generation
// collections (a busy moment while requests are in flight), V8 may start allocating every later
// object from those sites straight in the old generation. For a server, whose per-request objects
// die young, that is the wrong bet, and it sticks. Measured with `--trace-gc` on GET / (50
// connections): in 7 of 20 server processes started with the default, scavenges took ~5 ms instead
// of ~0.25 ms, a full mark-compact ran every ~0.2 s, and each request cost up to twice the CPU
// (34-54 µs instead of 19-29 µs). With pretenuring off, none of 13 traced processes fell into that
// mode (docs/benchmarks.md, "Evening").
import { setFlagsFromString } from 'node:v8'

setFlagsFromString('--no-allocation-site-pretenuring')
