#!/usr/bin/env node
'use strict';
// What the lock-free census of glibc's free lists costs (native/probe/glibc_census.c), against
// mallinfo2 on the same heap, in one process per heap (census_bench.c): through its pipe (the
// default), through process_vm_readv alone (what it was before the pipe, and its fallback), and
// mallinfo2, interleaved; medians of the repetitions, and whether each census equalled mallinfo2.
//   node scripts/bench/census/run.js [--reps 21]
const { execFileSync } = require('node:child_process');
const { mkdtempSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { flagReader } = require('../common');

const flag = flagReader(process.argv.slice(2));
const REPS = flag('reps', 21);
const probe = join(__dirname, '..', '..', '..', 'native', 'probe');
const binary = join(mkdtempSync(join(tmpdir(), 'allocscope-bench-census-')), 'census_bench');
execFileSync('gcc', ['-O2', `-I${probe}`, '-o', binary, join(__dirname, 'census_bench.c'), join(probe, 'glibc_census.c'), join(probe, 'glibc_probe.c'), '-ldl', '-lpthread']);

// Heaps: a tiny churned one (the census's fixed cost), a small and a large churned one (lists
// that jump from page to page), and
// blocks freed every other one (lists that often run in address order), at three sizes.
const HEAPS = [
  ['churn', 2_000, 64, REPS],
  ['churn', 2_000_000, 4096, REPS],
  ['churn', 2_000_000, 200_000, REPS],
  ['fragment', 20_000, '-', REPS],
  ['fragment', 200_000, '-', REPS],
  ['fragment', 2_000_000, '-', Math.min(REPS, 7)],
];
const rows = HEAPS.map(([shape, n, slots, reps]) => JSON.parse(execFileSync(binary, [shape, String(n), String(slots), String(reps)], { encoding: 'utf8' })));
console.log(JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
console.log('\nheap | free chunks listed | census, pipe | census, process_vm_readv only | mallinfo2 | pipe / vm | each equal to mallinfo2');
for (const r of rows) {
  const per = (us) => `${(us / 1000).toFixed(2)} ms (${((us * 1000) / r.listedChunks).toFixed(0)} ns/chunk)`;
  console.log(`${r.shape} ${r.n} | ${r.listedChunks} | ${per(r.pipeUs)} | ${per(r.vmUs)} | ${per(r.mallinfo2Us)} | ${(r.pipeUs / r.vmUs).toFixed(2)} | ${r.pipeEqualsMallinfo2 && r.vmEqualsMallinfo2 ? 'yes' : `pipe ${r.pipeEqualsMallinfo2}, vm ${r.vmEqualsMallinfo2}`}`);
}
