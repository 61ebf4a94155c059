'use strict';
/**
 * One Node process's side of the snapshot benchmark (run.js starts it under each allocator):
 * times, in this process, the native sampleInto alone (what the binding adds over floor.c),
 * the public snapshot(), and process.memoryUsage() for scale, then reports the process's shape
 * (threads, arenas, free chunks) so floor.c can rebuild it. Prints one JSON line.
 *
 * Reads the compiled package in dist/ (run `npx tsc -p tsconfig.build.json` first). sampleInto
 * is reached through lib/binding.ts, which is not public API: the point is to time it bare.
 *
 *   node scripts/bench/snapshot/node-bench.js [--batches 201]
 */
const { readFileSync } = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', '..', '..', 'dist');
const allocscope = require(path.join(dist, 'index.js'));
const { native, SAMPLE_WITH_ALLOCATOR } = require(path.join(dist, 'binding.js'));
const { liveDetection, slotNames } = require(path.join(dist, 'allocators', 'live.js'));

const batchesArg = process.argv.indexOf('--batches');
const batches = batchesArg > 0 ? Number(process.argv[batchesArg + 1]) : 201;

// The same method as floor.c: a batch lasts >= 20 us so clock reads are amortised, and the
// operations of a pair take turns batch by batch (rotating who goes first) so they share the
// machine's noise; the figure is the median batch.
//
// Two pairs: the bare sampleInto with and without the allocator read (what floor.c times, the
// same way), and snapshot() with process.memoryUsage(). The pairs take turns in rounds of
// ROUND_BATCHES batches, so both see the same spells of a noisy machine, but a sampleInto batch
// never follows a snapshot() or memoryUsage() batch. With only ~5 calls in a 20 us batch, the
// first call after another operation's batch (its code and data out of the caches) raised
// the median of sampleInto by ~0.5 us (3.5-3.9 vs 4.4-4.6 us under mimalloc, same build), and
// floor.c's loop, which alternates only its own two modes, pays no such cost.
const MIN_BATCH_NS = 20_000n;
const WARM_UP_CALLS = 2000;
const ROUND_BATCHES = 10;

function callsPerBatch(op) {
  for (let calls = 1; ; calls *= 2) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) op();
    if (process.hrtime.bigint() - start >= MIN_BATCH_NS || calls >= 1 << 20) return calls;
  }
}

function timeSideBySide(pairs, batchCount) {
  const groups = pairs.map((ops) => Object.entries(ops).map(([name, op]) => ({ name, op, calls: callsPerBatch(op), perCall: [] })));
  for (let first = 0; first < batchCount; first += ROUND_BATCHES) {
    for (const entries of groups) {
      for (let b = first; b < Math.min(batchCount, first + ROUND_BATCHES); b++) {
        for (let k = 0; k < entries.length; k++) {
          const entry = entries[(b + k) % entries.length];
          const start = process.hrtime.bigint();
          for (let i = 0; i < entry.calls; i++) entry.op();
          entry.perCall.push(Number(process.hrtime.bigint() - start) / entry.calls);
        }
      }
    }
  }
  const out = {};
  for (const { name, perCall } of groups.flat()) {
    perCall.sort((x, y) => x - y);
    out[`${name}Ns`] = perCall[perCall.length >> 1];
    out[`${name}P10Ns`] = perCall[Math.floor(perCall.length / 10)];
    out[`${name}P90Ns`] = perCall[perCall.length - 1 - Math.floor(perCall.length / 10)];
  }
  return out;
}

const binding = native();
const kind = liveDetection().kind;
const names = slotNames();
const slots = new Float64Array(names.length);

const pairs = [
  {
    sampleInto: () => binding.sampleInto(slots, kind, SAMPLE_WITH_ALLOCATOR),
    sampleIntoNoAllocator: () => binding.sampleInto(slots, kind, 0),
  },
  {
    snapshot: () => allocscope.snapshot(),
    memoryUsage: () => process.memoryUsage(),
  },
];
// Warm up before reading the shape: the JIT settles, and V8's helper threads make their first
// allocations (under jemalloc the initialized arenas go from 3 to 6 in the first few thousand
// snapshots).
for (const ops of pairs) for (const op of Object.values(ops)) for (let i = 0; i < WARM_UP_CALLS; i++) op();

/** Threads, and under jemalloc its initialized arenas, through the bare binding. */
function lightShape() {
  const threads = Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
  if (liveDetection().name !== 'jemalloc') return { threads, jemallocArenas: -1 };
  // arena.<i>.initialized is refreshed at each epoch (jemalloc ctl.c ctl_refresh): take one.
  binding.jemallocWrite('epoch', 'sized', 1n, 8);
  const narenas = Number(binding.jemallocReadAny('arenas.narenas').bits);
  let jemallocArenas = 0;
  for (let i = 0; i < narenas; i++) if (binding.jemallocReadAny(`arena.${i}.initialized`).bits === 1n) jemallocArenas++;
  return { threads, jemallocArenas };
}

/** The shape floor.c must rebuild for its figure to be the same work (see floor.c). */
function fullShape() {
  const out = { allocator: allocscope.allocator().name, ...lightShape(), glibcArenas: -1, glibcFreeChunks: -1 };
  if (out.allocator === 'glibc') {
    const info = allocscope.glibc.mallinfo2();
    out.glibcFreeChunks = info.ordblks + info.smblks;
    out.glibcArenas = allocscope.glibc.mallocInfo().arenas.length;
  }
  return out;
}

// Before timing, only what the bare binding gives: parsing malloc_info's XML in this process
// first made snapshot()'s JS side ~2 us slower in the timing that followed (V8 inline caches and
// object shapes are process-wide), and that is not what a clean process pays.
const before = lightShape();
const medians = timeSideBySide(pairs, batches);
const after = fullShape();
// The shape at the end is what floor.c rebuilds; `shapeChanged` says if threads or jemalloc
// arenas moved while timing (glibc arenas follow threads; its free-chunk count always moves a
// little as V8 frees and allocates).
const shapeChanged = before.threads !== after.threads || before.jemallocArenas !== after.jemallocArenas;
process.stdout.write(`${JSON.stringify({ ...after, shapeChanged, batches, ...medians })}\n`);
