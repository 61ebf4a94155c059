#!/usr/bin/env node
// `profile-pid --children` on a tree of 100 processes (issue 4 "Benchmarks"): CPU time of
// allocscope's per-sample tree read (ProcTree.read(), what --children does each tick) against
// reading the same processes' figures with pidusage (its Linux path preads /proc/PID/stat, fds
// kept open), in one run: both read at every tick, at 1 Hz and at a faster rate (more samples).
// CPU is process.cpuUsage() (every thread of this process: pidusage's reads run on libuv's
// thread pool), per sample and per second of wall.
//   node scripts/bench/tree/run.js [--processes 100] [--seconds 120] [--fast-hz 20]
//                                  [--fast-seconds 60] [--eager-seconds 20]
'use strict';
const { flagReader, median } = require('../common');
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');
const { loadavg } = require('node:os');
const { join } = require('node:path');
const root = join(__dirname, '..', '..', '..');
const pidusage = require('pidusage');
const { descendants, openProcTree, DESCENDANT_PSS_INTERVAL_MS } = require(join(root, 'dist', 'proc', 'tree.js'));
const { SmapsGate } = require(join(root, 'dist', 'proc', 'smaps-rollup.js'));

const args = process.argv.slice(2);
const flag = flagReader(args);
const PROCESSES = flag('processes', 100);
const SECONDS = flag('seconds', 120);
const FAST_HZ = flag('fast-hz', 20);
const FAST_SECONDS = flag('fast-seconds', 60);
const EAGER_SECONDS = flag('eager-seconds', 20);
const WORKLOAD = join(root, 'build', 'Release', 'heap_workload');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpuMicros = (since) => {
  const used = process.cpuUsage(since);
  return used.user + used.system;
};

/** A shell with PROCESSES children (the C workload fixture, else sleep), like a prefork server. */
async function startTree() {
  const child = existsSync(WORKLOAD) ? `${WORKLOAD} steady 100 1000 0 >/dev/null` : 'sleep 3600';
  const shell = spawn('sh', ['-c', `i=0; while [ $i -lt ${PROCESSES} ]; do ${child} & i=$((i+1)); done; wait`], { stdio: 'ignore' });
  for (let i = 0; i < 500 && descendants(shell.pid).length < PROCESSES; i++) await sleep(20);
  await sleep(500); // every child past exec
  return shell;
}

/** Ends what startTree started, by pid: the shell's children, then the shell. */
function stopTree(shell) {
  for (const pid of descendants(shell.pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  shell.kill('SIGKILL');
}

/**
 * 95% bootstrap confidence interval of sum(a) / sum(b), a[i] and b[i] taken at the same tick
 * (ticks resampled with replacement): the ratio of CPU per second of wall of the two arms.
 */
function bootstrapRatioOfSums(a, b, resamples = 5000) {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const ratios = [];
  for (let r = 0; r < resamples; r++) {
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < a.length; i++) {
      const j = Math.floor(random() * a.length);
      sa += a[j];
      sb += b[j];
    }
    ratios.push(sa / sb);
  }
  ratios.sort((x, y) => x - y);
  return { low: ratios[Math.floor(0.025 * resamples)], high: ratios[Math.floor(0.975 * resamples)] };
}

/**
 * Ticks at `hz` for `seconds`; at each tick every arm reads once, back to back, the order
 * rotated each tick, each read timed by process.cpuUsage() around it (pidusage's thread-pool
 * work included: it is awaited). Interleaving per tick, not in windows, keeps both arms under the
 * same machine load and lets the tree's PSS schedule run in real time (in alternating windows,
 * reads due while the other arm runs would pile up). CPU per second of wall: an arm's total CPU
 * over the phase's wall time.
 */
async function phase(arms, hz, seconds) {
  const names = Object.keys(arms);
  const perSample = Object.fromEntries(names.map((n) => [n, []]));
  const extra = Object.fromEntries(names.map((n) => [n, 0]));
  const period = 1000 / hz;
  const start = performance.now();
  const ticks = Math.round(seconds * hz);
  for (let tick = 0; tick < ticks; tick++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(tick + k) % names.length];
      const before = process.cpuUsage();
      const value = await arms[name]();
      perSample[name].push(cpuMicros(before));
      extra[name] += value?.raw?.tree?.smapsReads ?? 0;
    }
    await sleep(Math.max(0, start + (tick + 1) * period - performance.now()));
  }
  const wallSeconds = (performance.now() - start) / 1000;
  const summary = { ticks };
  if (names.length === 2) summary.ratioCi95 = bootstrapRatioOfSums(perSample[names[0]], perSample[names[1]]);
  for (const name of names) {
    const total = perSample[name].reduce((a, b) => a + b, 0);
    summary[name] = {
      samples: perSample[name].length,
      medianCpuMicrosPerSample: median(perSample[name]),
      p90CpuMicrosPerSample: [...perSample[name]].sort((a, b) => a - b)[Math.floor(0.9 * perSample[name].length)],
      cpuMicrosPerWallSecond: total / wallSeconds,
      ...(extra[name] > 0 ? { smapsReads: extra[name] } : {}),
    };
  }
  return summary;
}

async function main() {
  const shell = await startTree();
  const stop = () => {
    stopTree(shell);
    process.exit(130);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    const pids = [shell.pid, ...descendants(shell.pid)];
    // The reader profile-pid --children polls, with its defaults.
    const tree = openProcTree(shell.pid);
    const arms = {
      allocscope: async () => tree.read(),
      pidusage: () => pidusage(pids),
    };
    // Warm up (first opens, pidusage's clock-tick lookup, JIT); the tree's first read reads
    // every PSS, as profile-pid's first sample does.
    const first = tree.read();
    for (let i = 0; i < 3; i++) for (const read of Object.values(arms)) await read();

    const result = {
      date: new Date().toISOString(),
      loadavgBefore: loadavg(),
      processes: first.raw.tree.processes,
      children: existsSync(WORKLOAD) ? 'heap_workload steady 100 1000 0' : 'sleep',
      treePss: first.processBytes.pss,
      treeRss: first.processBytes.rss,
      pssIntervalMs: DESCENDANT_PSS_INTERVAL_MS,
      phases: {},
    };
    result.phases['1Hz'] = await phase(arms, 1, SECONDS);
    result.phases[`${FAST_HZ}Hz`] = await phase(arms, FAST_HZ, FAST_SECONDS);
    for (const summary of Object.values(result.phases)) {
      summary.ratioPerSample = summary.allocscope.medianCpuMicrosPerSample / summary.pidusage.medianCpuMicrosPerSample;
      summary.ratioPerWallSecond = summary.allocscope.cpuMicrosPerWallSecond / summary.pidusage.cpuMicrosPerWallSecond;
    }
    // What the PSS cadence saves: the same tree with smaps_rollup read for every process at every
    // sample (a gate without interval), against pidusage, 1 Hz.
    const eager = openProcTree(shell.pid, { smapsGate: new SmapsGate({ minIntervalMs: 0, maxDutyRatio: 1 }) });
    result.phases.pssEverySample1Hz = await phase({ allocscopePssEverySample: async () => eager.read(), pidusage: () => pidusage(pids) }, 1, EAGER_SECONDS);
    eager.close();
    result.loadavgAfter = loadavg();
    tree.close();
    pidusage.clear();
    console.log(JSON.stringify(result, null, 2));
  } finally {
    stopTree(shell);
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
