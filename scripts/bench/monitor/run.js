#!/usr/bin/env node
'use strict';
const { bootstrapMedian, cpuTicks, flagReader, median, stealShare } = require('../common');
// The monitor's cost, in one run (issue 3's benchmark; figures in scripts/bench/RESULTS.md):
//
// 1. HTTP A/B: a node:http service (server.js) under autocannon on 127.0.0.1, with the monitor
//    off, off again (an A/A control), at 1 Hz and at 10 Hz, the modes' order rotating every round.
//    Per round: requests per second, p99 latency and the server's CPU time per request; each
//    figure is divided by the same round's "off" figure, and the median of those ratios is
//    reported with a bootstrap 95% interval (the machine's speed drifts between rounds; pairing
//    within a round cancels part of it, and the control shows how much is left).
// 2. CPU per sample (sample-cost.js): every thread's CPU time per monitor sample, against an idle
//    process; times 1 or 10 samples a second, it bounds the share of a core the monitor can take.
// 3. The glibc guard (stall.js): event-loop delay and the slowest malloc-taking timer callback
//    with 1e5 and 1e6 free chunks in the main arena, monitor off / started at boot / started late.
//
// On a machine of 2 CPUs or more the load generator (this process) runs on CPU 0 and the service,
// every thread of it, the monitor's worker included, on CPU 1 (taskset): the two no longer trade
// a CPU back and forth, and the monitor's census competes with the very thread it serves. Each
// round records the machine's steal time (stderr and --json).
//
//   node scripts/bench/monitor/run.js [--rounds 5] [--seconds 5] [--stall-rounds 2] [--json]
//                                     [--skip cost,http,stall] [--no-pin]
const { execFileSync, fork, spawnSync } = require('node:child_process');
const { cpus } = require('node:os');
const { join } = require('node:path');
const autocannon = require('autocannon');

const args = process.argv.slice(2);
const flag = flagReader(args);
const ROUNDS = flag('rounds', 5);
const SECONDS = flag('seconds', 5);
const STALL_ROUNDS = flag('stall-rounds', 2);
// "off-again" is "off" once more: an A/A control. Its ratio to "off" is what this machine's noise
// alone makes of two identical arms; an "on" ratio within its spread says nothing.
const MODES = ['off', 'off-again', '1', '10'];
const skip = new Set(args.includes('--skip') ? args[args.indexOf('--skip') + 1].split(',') : []);
const PIN = !args.includes('--no-pin') && cpus().length >= 2 && spawnSync('taskset', ['--version']).status === 0;

/** Binds every thread of `pid` to `cpu` (taskset from util-linux). */
function pin(pid, cpu) {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}


function ask(child, message) {
  return new Promise((resolve) => {
    child.once('message', resolve);
    child.send(message);
  });
}

function load(port, seconds) {
  return new Promise((resolve, reject) => {
    autocannon({ url: `http://127.0.0.1:${port}/`, connections: 10, duration: seconds }, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

async function httpRound(mode) {
  const child = fork(join(__dirname, 'server.js'), [mode === 'off-again' ? 'off' : mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await new Promise((resolve) => child.once('message', resolve));
  if (PIN) pin(child.pid, 1);
  await load(port, 1); // warm-up: JIT, connections
  const before = await ask(child, 'report');
  const ticks = cpuTicks();
  const result = await load(port, SECONDS);
  const stealPercent = stealShare(ticks, cpuTicks());
  const after = await ask(child, 'report');
  child.send('exit');
  await new Promise((resolve) => child.once('exit', resolve));
  const cpuUs = after.cpu.user + after.cpu.system - (before.cpu.user + before.cpu.system);
  return {
    mode,
    requestsPerSecond: result.requests.average,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx,
    cpuUsPerRequest: cpuUs / result.requests.total,
    stealPercent: +stealPercent.toFixed(2),
    monitorDutyCycle: after.stats === null ? null : after.stats.dutyCycle,
    monitorSamples: after.stats === null ? null : after.stats.samples,
  };
}

function stallRun(chunks, mode) {
  const out = spawnSync(process.execPath, [join(__dirname, 'stall.js'), String(chunks), mode, '10'], { encoding: 'utf8', timeout: 180_000 });
  if (out.status !== 0) throw new Error(`stall.js ${chunks} ${mode}: exit ${out.status}\n${out.stderr}`);
  return JSON.parse(out.stdout.trim().split('\n').pop());
}

function sampleCostRun(mode) {
  const out = spawnSync(process.execPath, [join(__dirname, 'sample-cost.js'), mode, '4'], { encoding: 'utf8', timeout: 60_000 });
  if (out.status !== 0) throw new Error(`sample-cost.js ${mode}: exit ${out.status}\n${out.stderr}`);
  return JSON.parse(out.stdout.trim().split('\n').pop());
}

/** The per-round ratios of `mode` to the same round's "off" for `key`: median and bootstrap 95% CI. */
function ratioOf(rounds, mode, key) {
  return bootstrapMedian(rounds.map((r) => r[mode][key] / r.off[key]));
}

function httpSummary(rounds) {
  const http = {};
  for (const mode of MODES) {
    http[mode] = {
      requestsPerSecond: median(rounds.map((r) => r[mode].requestsPerSecond)),
      p99Ms: median(rounds.map((r) => r[mode].p99Ms)),
      cpuUsPerRequest: median(rounds.map((r) => r[mode].cpuUsPerRequest)),
      errors: rounds.reduce((sum, r) => sum + r[mode].errors, 0),
      monitorDutyCycle: mode.startsWith('off') ? null : median(rounds.map((r) => r[mode].monitorDutyCycle)),
      throughputRatio: mode === 'off' ? null : ratioOf(rounds, mode, 'requestsPerSecond'),
      p99Ratio: mode === 'off' ? null : ratioOf(rounds, mode, 'p99Ms'),
      cpuPerRequestRatio: mode === 'off' ? null : ratioOf(rounds, mode, 'cpuUsPerRequest'),
    };
  }
  return http;
}

const ratioText = (r) => (r === null ? '1' : `${r.median.toFixed(4)} [${r.low.toFixed(3)}, ${r.high.toFixed(3)}]`);

function printHttp(title, http) {
  console.log(`\n${title}`);
  console.log('mode | req/s | p99 ms | CPU us/req | throughput ratio [95% CI] | p99 ratio | CPU/req ratio [95% CI] | monitor duty cycle | errors');
  for (const mode of MODES) {
    const h = http[mode];
    console.log(
      `${mode.startsWith('off') ? mode : `${mode} Hz`} | ${h.requestsPerSecond.toFixed(0)} | ${h.p99Ms} | ${h.cpuUsPerRequest.toFixed(1)} | ${ratioText(h.throughputRatio)} | ${h.p99Ratio === null ? '1' : h.p99Ratio.median.toFixed(3)} | ${ratioText(h.cpuPerRequestRatio)} | ${h.monitorDutyCycle === null ? '-' : `${(h.monitorDutyCycle * 100).toFixed(4)}%`} | ${h.errors}`,
    );
  }
}

async function main() {
  if (PIN) pin(process.pid, 0);
  const report = { date: new Date().toISOString(), rounds: ROUNDS, seconds: SECONDS, pinned: PIN };
  if (!skip.has('cost')) {
    const costs = [];
    for (let r = 0; r < 3; r++) {
      const on = sampleCostRun('on');
      const off = sampleCostRun('off');
      costs.push((on.cpuUs - off.cpuUs) / on.samples);
    }
    report.cpuUsPerSample = median(costs);
    report.cpuUsPerSampleRuns = costs;
    process.stderr.write(`CPU per sample: ${costs.map((c) => c.toFixed(1)).join(', ')} us\n`);
  }
  if (!skip.has('http')) {
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]);
      const round = {};
      for (const mode of order) round[mode] = await httpRound(mode);
      rounds.push(round);
      process.stderr.write(`round ${r + 1}/${ROUNDS}: ${MODES.map((m) => `${m} ${round[m].requestsPerSecond.toFixed(0)} req/s (steal ${round[m].stealPercent}%)`).join(', ')}\n`);
    }
    report.httpRounds = rounds;
    report.http = httpSummary(rounds);
  }
  if (!skip.has('stall')) {
    report.stall = [];
    for (const chunks of [100_000, 1_000_000]) {
      for (let r = 0; r < STALL_ROUNDS; r++) {
        for (const mode of ['off', 'boot', 'late']) {
          const result = stallRun(chunks, mode);
          report.stall.push(result);
          process.stderr.write(`stall ${chunks} ${mode}: max delay ${result.maxDelayMs.toFixed(1)} ms, slowest churn ${result.slowestChurnMs.toFixed(1)} ms, worker read max ${result.maxWorkerReadMs.toFixed(1)} ms\n`);
        }
      }
    }
  }
  if (args.includes('--json')) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  if (report.cpuUsPerSample !== undefined) {
    const us = report.cpuUsPerSample;
    console.log(`CPU per monitor sample (all threads, median of 3): ${us.toFixed(1)} us = ${(us / 1e4).toFixed(4)}% of a core at 1 Hz, ${(us / 1e3).toFixed(3)}% at 10 Hz`);
  }
  if (report.http !== undefined) {
    printHttp(`HTTP, ${ROUNDS} rounds${PIN ? ' (load on CPU 0, service on CPU 1)' : ''}: medians over rounds; ratios are medians of per-round ratios to "off"`, report.http);
  }
  if (report.stall !== undefined) {
    console.log('\nglibc guard (per run)');
    console.log('free chunks | mode | max loop delay ms | p99 loop delay ms | slowest timer ms | monitor JS-thread read max ms | worker read max ms | samples (cheap, worker)');
    for (const s of report.stall) {
      console.log(`${s.chunks} | ${s.mode} | ${s.maxDelayMs.toFixed(1)} | ${s.p99DelayMs.toFixed(1)} | ${s.slowestChurnMs.toFixed(1)} | ${s.maxJsThreadReadMs.toFixed(3)} | ${s.maxWorkerReadMs.toFixed(1)} | ${s.samples} (${s.cheapSamples}, ${s.offThreadSamples})`);
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
