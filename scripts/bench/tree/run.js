#!/usr/bin/env node
// `profile-pid --children` on a tree of 100 processes (issue 4 "Benchmarks"): CPU time of
// allocscope's per-sample tree read (ProcTree.read(), what --children does each tick) against
// reading the same processes' figures with pidusage (its Linux path preads /proc/PID/stat, fds
// kept open), in one run: windows of each alternate, at 1 Hz and at a faster rate (more samples,
// so per-sample CPU is measurable). CPU is process.cpuUsage() (every thread of this process:
// pidusage's reads run on libuv's thread pool), per sample and per second of wall.
//   node scripts/bench/tree/run.js [--processes 100] [--seconds 10] [--rounds 3] [--fast-hz 20]
'use strict';
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');
const { loadavg } = require('node:os');
const { join } = require('node:path');
const root = join(__dirname, '..', '..', '..');
const pidusage = require('pidusage');
const { descendants, openProcTree } = require(join(root, 'dist', 'proc', 'tree.js'));
const { SmapsGate } = require(join(root, 'dist', 'proc', 'smaps-rollup.js'));

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const PROCESSES = flag('processes', 100);
const SECONDS = flag('seconds', 10);
const ROUNDS = flag('rounds', 3);
const FAST_HZ = flag('fast-hz', 20);
const WORKLOAD = join(root, 'build', 'Release', 'heap_workload');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
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

/** Samples with `read` at `hz` for SECONDS: CPU µs per sample, and CPU µs per second of wall. */
async function window(read, hz) {
  const perSample = [];
  const period = 1000 / hz;
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  for (let tick = 0; tick < SECONDS * hz; tick++) {
    const before = process.cpuUsage();
    await read();
    perSample.push(cpuMicros(before));
    const next = wallStart + (tick + 1) * period;
    await sleep(Math.max(0, next - performance.now()));
  }
  const wallSeconds = (performance.now() - wallStart) / 1000;
  return { perSample, cpuPerWallSecond: cpuMicros(cpuStart) / wallSeconds };
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
    // The reader profile-pid --children polls (the shared smaps gate: PSS at most once per 10 s).
    const tree = openProcTree(shell.pid);
    // The same with PSS read every sample (a gate without interval): what the gate saves.
    const eager = openProcTree(shell.pid, { smapsGate: new SmapsGate({ minIntervalMs: 0, maxDutyRatio: 1 }) });
    const arms = {
      allocscope: async () => tree.read(),
      pidusage: () => pidusage(pids),
      allocscopePssEverySample: async () => eager.read(),
    };
    // Warm up every arm (first opens, pidusage's clock-tick lookup, JIT).
    for (let i = 0; i < 3; i++) for (const read of Object.values(arms)) await read();
    const first = tree.read();

    const result = {
      date: new Date().toISOString(),
      loadavgBefore: loadavg(),
      processes: first.raw.tree.processes,
      children: existsSync(WORKLOAD) ? 'heap_workload steady 100 1000 0' : 'sleep',
      treePss: first.processBytes.pss,
      treeRss: first.processBytes.rss,
      seconds: SECONDS,
      rounds: ROUNDS,
      rates: {},
    };
    for (const hz of [1, FAST_HZ]) {
      const names = hz === 1 ? ['allocscope', 'pidusage', 'allocscopePssEverySample'] : ['allocscope', 'pidusage'];
      const runs = Object.fromEntries(names.map((n) => [n, []]));
      for (let round = 0; round < ROUNDS; round++) {
        for (let k = 0; k < names.length; k++) {
          const name = names[(round + k) % names.length]; // rotate the order each round
          runs[name].push(await window(arms[name], hz));
        }
      }
      const summary = {};
      for (const name of names) {
        summary[name] = {
          medianCpuMicrosPerSample: median(runs[name].flatMap((w) => w.perSample)),
          cpuMicrosPerWallSecond: median(runs[name].map((w) => w.cpuPerWallSecond)),
          windows: runs[name].map((w) => Math.round(w.cpuPerWallSecond)),
        };
      }
      summary.ratioPerSample = summary.allocscope.medianCpuMicrosPerSample / summary.pidusage.medianCpuMicrosPerSample;
      // Per round: the two windows ran back to back, so a drift of the machine cancels out.
      summary.ratioPerWallSecond = median(runs.allocscope.map((w, i) => w.cpuPerWallSecond / runs.pidusage[i].cpuPerWallSecond));
      result.rates[`${hz}Hz`] = summary;
    }
    result.loadavgAfter = loadavg();
    tree.close();
    eager.close();
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
