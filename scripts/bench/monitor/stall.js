'use strict';
// The glibc guard. A Node process whose main arena ends up holding CHUNKS free chunks that cannot
// coalesce (mallinfo2 walks them all, ~150 ns each: references/limits.md §1), with the JS thread
// kept busy by a 1 ms timer whose mallocs miss tcache (so each takes the main arena's lock, and
// waits whenever mallinfo2's walk holds it). Modes:
//   off   no monitor; the fragmentation is built in 10 steps over the first half of the run
//   boot  the monitor (1 Hz) starts first, as in a service that starts it at boot; same steps
//   late  the fragmentation is built first, then the monitor starts on it: its first read is blind
// Prints one JSON line: the event loop's delays, the slowest timer callback, and what the monitor
// did on the JS thread and on workers.
//   node stall.js CHUNKS off|boot|late SECONDS
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { join } = require('node:path');
const fixture = require(join(__dirname, '../../../build/Release/heap_fixture.node'));
const { monitor } = require('../../../dist/monitor');

const chunks = Number(process.argv[2]);
const mode = process.argv[3];
const seconds = Number(process.argv[4] ?? 10);
const STEPS = 10;
const pins = [];
// Blocks of 16-512 B, every other one freed: `n` free chunks, none adjacent.
const fragment = (n, seed) => pins.push(fixture.fragment(2 * n, 16, 512, 2, seed));

if (mode === 'late') fragment(chunks, 1);
const histogram = monitorEventLoopDelay({ resolution: 1 });
// 2,000 B is above glibc's tcache limit (1,032 B).
let slowestChurnNs = 0;
const churn = setInterval(() => {
  const start = process.hrtime.bigint();
  for (let i = 0; i < 20; i++) Buffer.allocUnsafeSlow(2000);
  const ns = Number(process.hrtime.bigint() - start);
  if (ns > slowestChurnNs) slowestChurnNs = ns;
}, 1);
churn.unref();
histogram.enable();
const watcher = mode === 'off' ? null : monitor({ intervalMs: 1000, verdictEvery: 0 });
let maxJsThreadReadNs = 0;
let maxWorkerReadNs = 0;
let maxCensusNs = 0;
let maxCensusChunks = 0;
watcher?.on('sample', (event) => {
  if (event.census !== null && event.census !== undefined) {
    maxCensusNs = Math.max(maxCensusNs, event.census.ns);
    maxCensusChunks = Math.max(maxCensusChunks, event.census.chunks);
  }
  if (event.readNs === null) return;
  if (event.offThread) maxWorkerReadNs = Math.max(maxWorkerReadNs, event.readNs);
  else maxJsThreadReadNs = Math.max(maxJsThreadReadNs, event.readNs);
});
if (mode !== 'late') {
  for (let step = 0; step < STEPS; step++) {
    setTimeout(() => fragment(chunks / STEPS, step + 1), ((step + 1) * seconds * 500) / STEPS).unref();
  }
}
setTimeout(() => {
  histogram.disable();
  clearInterval(churn);
  const stats = watcher?.stats() ?? null;
  watcher?.stop();
  const result = {
    chunks,
    mode,
    maxDelayMs: histogram.max / 1e6,
    p99DelayMs: histogram.percentile(99) / 1e6,
    slowestChurnMs: slowestChurnNs / 1e6,
    maxJsThreadReadMs: maxJsThreadReadNs / 1e6,
    maxWorkerReadMs: maxWorkerReadNs / 1e6,
    maxCensusMs: maxCensusNs / 1e6,
    maxCensusChunks,
    samples: stats?.samples ?? 0,
    cheapSamples: stats?.cheapSamples ?? 0,
    offThreadSamples: stats?.offThreadSamples ?? 0,
    dutyCycle: stats?.dutyCycle ?? 0,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const pin of pins) fixture.release(pin);
}, seconds * 1000);
