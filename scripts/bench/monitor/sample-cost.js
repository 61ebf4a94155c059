'use strict';
// CPU time per monitor sample, every thread included (process.cpuUsage): the monitor runs as fast
// as it can (10 ms, a 50% duty cycle so nothing stretches) in an otherwise idle process, against
// the same process idle for the same time. Its share of a core at a rate R is then
// cpuPerSample x R, which bounds the throughput any service can lose to it.
//   node sample-cost.js on|off SECONDS
const { monitor } = require('../../../dist/monitor');

const on = process.argv[2] === 'on';
const seconds = Number(process.argv[3] ?? 3);
const keepAlive = setInterval(() => undefined, 1000);
const watcher = on ? monitor({ intervalMs: 10, verdictEvery: 0, budget: { dutyCycle: 0.5, maxSampleMs: 1 } }) : null;
// Measured after a 2 s warm-up: V8 compiles the hot paths on its own threads, counted by cpuUsage.
let start;
let warmSamples = 0;
setTimeout(() => {
  start = process.cpuUsage();
  warmSamples = watcher?.stats().samples ?? 0;
}, 2000);
setTimeout(() => {
  const cpu = process.cpuUsage(start);
  const stats = watcher?.stats() ?? null;
  if (stats !== null) stats.samples -= warmSamples;
  watcher?.stop();
  clearInterval(keepAlive);
  process.stdout.write(`${JSON.stringify({ on, cpuUs: cpu.user + cpu.system, samples: stats?.samples ?? 0, cheapSamples: stats?.cheapSamples ?? 0 })}\n`);
}, 2000 + seconds * 1000);
