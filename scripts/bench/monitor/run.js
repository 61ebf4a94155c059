#!/usr/bin/env node
'use strict';
const { flagReader, median } = require('../common');
// The monitor's cost, in one run (issue 3's benchmark; figures in scripts/bench/RESULTS.md):
//
// 1. HTTP A/B: a node:http service (server.js) under autocannon on 127.0.0.1, with the monitor
//    off, at 1 Hz and at 10 Hz, the modes' order rotating every round. Per round: requests per
//    second, p99 latency and the server's CPU time per request; each "on" figure is divided by
//    the same round's "off" figure, and the median of those ratios is reported (the machine's
//    speed drifts between rounds; pairing within a round cancels it).
// 2. CPU per sample (sample-cost.js): every thread's CPU time per monitor sample, against an idle
//    process; times 1 or 10 samples a second, it bounds the share of a core the monitor can take.
// 3. The glibc guard (stall.js): event-loop delay and the slowest malloc-taking timer callback
//    with 1e5 and 1e6 free chunks in the main arena, monitor off / started at boot / started late.
//
//   node scripts/bench/monitor/run.js [--rounds 5] [--seconds 5] [--stall-rounds 2] [--json]
const { fork, spawnSync } = require('node:child_process');
const { join } = require('node:path');
const autocannon = require('autocannon');

const args = process.argv.slice(2);
const flag = flagReader(args);
const ROUNDS = flag('rounds', 5);
const SECONDS = flag('seconds', 5);
const STALL_ROUNDS = flag('stall-rounds', 2);
const MODES = ['off', '1', '10'];


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
  const child = fork(join(__dirname, 'server.js'), [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await new Promise((resolve) => child.once('message', resolve));
  await load(port, 1); // warm-up: JIT, connections
  const before = await ask(child, 'report');
  const result = await load(port, SECONDS);
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

async function main() {
  const costs = [];
  for (let r = 0; r < 3; r++) {
    const on = sampleCostRun('on');
    const off = sampleCostRun('off');
    costs.push((on.cpuUs - off.cpuUs) / on.samples);
  }
  const cpuUsPerSample = median(costs);
  process.stderr.write(`CPU per sample: ${costs.map((c) => c.toFixed(1)).join(', ')} us\n`);
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]);
    const round = {};
    for (const mode of order) round[mode] = await httpRound(mode);
    rounds.push(round);
    process.stderr.write(`round ${r + 1}/${ROUNDS}: ${MODES.map((m) => `${m} ${round[m].requestsPerSecond.toFixed(0)} req/s`).join(', ')}\n`);
  }
  const http = {};
  for (const mode of MODES) {
    http[mode] = {
      requestsPerSecond: median(rounds.map((r) => r[mode].requestsPerSecond)),
      p99Ms: median(rounds.map((r) => r[mode].p99Ms)),
      cpuUsPerRequest: median(rounds.map((r) => r[mode].cpuUsPerRequest)),
      errors: rounds.reduce((sum, r) => sum + r[mode].errors, 0),
      monitorDutyCycle: mode === 'off' ? null : median(rounds.map((r) => r[mode].monitorDutyCycle)),
      throughputRatio: mode === 'off' ? 1 : median(rounds.map((r) => r[mode].requestsPerSecond / r.off.requestsPerSecond)),
      p99Ratio: mode === 'off' ? 1 : median(rounds.map((r) => r[mode].p99Ms / r.off.p99Ms)),
      cpuPerRequestRatio: mode === 'off' ? 1 : median(rounds.map((r) => r[mode].cpuUsPerRequest / r.off.cpuUsPerRequest)),
    };
  }
  const stall = [];
  for (const chunks of [100_000, 1_000_000]) {
    for (let r = 0; r < STALL_ROUNDS; r++) {
      for (const mode of ['off', 'boot', 'late']) {
        const result = stallRun(chunks, mode);
        stall.push(result);
        process.stderr.write(`stall ${chunks} ${mode}: max delay ${result.maxDelayMs.toFixed(1)} ms, slowest churn ${result.slowestChurnMs.toFixed(1)} ms, worker read max ${result.maxWorkerReadMs.toFixed(1)} ms\n`);
      }
    }
  }
  const report = { date: new Date().toISOString(), rounds: ROUNDS, seconds: SECONDS, cpuUsPerSample, cpuUsPerSampleRuns: costs, http, httpRounds: rounds, stall };
  if (args.includes('--json')) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  console.log(`CPU per monitor sample (all threads, median of 3): ${cpuUsPerSample.toFixed(1)} us = ${(cpuUsPerSample / 1e4).toFixed(4)}% of a core at 1 Hz, ${(cpuUsPerSample / 1e3).toFixed(3)}% at 10 Hz`);
  console.log('\nHTTP (medians over rounds; ratios are medians of per-round ratios to "off")');
  console.log('mode | req/s | p99 ms | CPU us/req | throughput ratio | p99 ratio | CPU/req ratio | monitor duty cycle | errors');
  for (const mode of MODES) {
    const h = http[mode];
    console.log(
      `${mode === 'off' ? 'off' : `${mode} Hz`} | ${h.requestsPerSecond.toFixed(0)} | ${h.p99Ms} | ${h.cpuUsPerRequest.toFixed(1)} | ${h.throughputRatio.toFixed(4)} | ${h.p99Ratio.toFixed(3)} | ${h.cpuPerRequestRatio.toFixed(4)} | ${h.monitorDutyCycle === null ? '-' : `${(h.monitorDutyCycle * 100).toFixed(4)}%`} | ${h.errors}`,
    );
  }
  console.log('\nglibc guard (per run)');
  console.log('free chunks | mode | max loop delay ms | p99 loop delay ms | slowest timer ms | monitor JS-thread read max ms | worker read max ms | samples (cheap, worker)');
  for (const s of stall) {
    console.log(`${s.chunks} | ${s.mode} | ${s.maxDelayMs.toFixed(1)} | ${s.p99DelayMs.toFixed(1)} | ${s.slowestChurnMs.toFixed(1)} | ${s.maxJsThreadReadMs.toFixed(3)} | ${s.maxWorkerReadMs.toFixed(1)} | ${s.samples} (${s.cheapSamples}, ${s.offThreadSamples})`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
