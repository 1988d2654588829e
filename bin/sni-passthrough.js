#!/bin/sh
":" //; export MALLOC_TRIM_THRESHOLD_=134217728; export MALLOC_ARENA_MAX=2; exec node --single-threaded-gc --max-semi-space-size=4 "$0" "$@"
// Line 2 is for sh; for node it is a string and a comment. Run as a program
// (the installed command, npx, systemd), this file starts node in the same
// process (exec) with the settings there, on any POSIX sh (busybox's env has
// no -S). `node bin/sni-passthrough.js` runs without them. biome.json leaves
// this file unformatted: its formatter would end the string with `;`, and sh
// would then run `//` as a command.
//
// MALLOC_TRIM_THRESHOLD_: every socket read gets a fresh 64 KiB buffer, freed
// only when V8 collects it, up to 64 MiB of them at once; when glibc hands
// that memory back to the kernel, the next reads fault every page in again
// (16 faults per read), which tripled the CPU per GiB in `npm run bench`.
// Keeping up to 128 MiB of freed memory avoids that (32 MiB did only on a quiet
// machine). MALLOC_ARENA_MAX: the threads (the config loader's, libuv's)
// share two allocator arenas instead of one each, in which what they freed
// stayed (1.2 MiB resident at start). --single-threaded-gc: the heap is
// small, and GC helper threads cost more CPU than they save, competing with
// the kernel's network work for the cores. --max-semi-space-size=4 (MiB;
// V8's default lets it grow to 16): opening thousands of connections at once
// grew the young generation to its largest, and resident memory with it, 9.6
// against 6.3 KiB per idle connection in the bench.
import { main } from '../dist/cli.js';

await main(process.argv);
