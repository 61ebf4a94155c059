#!/usr/bin/env node
// What `allocscope attach` costs the target, ptrace injector against gdb, in one run (README
// "A process you cannot restart"). Each round attaches once with each injector (order alternating)
// to a fresh target of each kind:
//   c-sleeping  heap_workload leak 4096 5 0 (asleep in nanosleep most of the time)
//   c-busy      heap_workload fragment 1 0 0 (one thread busy in malloc/free, never asleep)
//   node        a Node process that measures its own event loop: the largest lateness of a 1 ms
//               timer, reported every 50 ms; the figure is the worst window during the attach,
//               and the same measure in a window without any attach is the baseline
// Per attach: the injector's wall time, the sampled time the target's main thread spent stopped
// (state t, every 2 ms), and (ptrace) how long the borrowed thread spent in the injected call.
//   node scripts/bench/attach/run.js [--rounds 10]
'use strict';
const { flagReader, median } = require('../common');
const { spawn } = require('node:child_process');
const { loadavg } = require('node:os');
const { join } = require('node:path');
const root = join(__dirname, '..', '..', '..');
const { attachAgent } = require(join(root, 'dist', 'targets', 'attach.js'));
const { agentSocketPath } = require(join(root, 'dist', 'targets', 'agent.js'));
const { rmSync } = require('node:fs');

const flag = flagReader(process.argv.slice(2));
const ROUNDS = flag('rounds', 10);
const WORKLOAD = join(root, 'build', 'Release', 'heap_workload');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The Node target: every 50 ms, the worst lateness of a 1 ms interval timer in that window.
const NODE_TARGET = `
let last = performance.now(), worst = 0;
setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last - 1); last = now; }, 1);
setInterval(() => { console.log(JSON.stringify({ t: Date.now(), worst })); worst = 0; }, 50);
`;

async function startTarget(kind) {
  const child =
    kind === 'node'
      ? spawn(process.execPath, ['-e', NODE_TARGET], { stdio: ['ignore', 'pipe', 'ignore'] })
      : spawn(WORKLOAD, kind === 'c-sleeping' ? ['leak', '4096', '5', '0'] : ['fragment', '1', '0', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const windows = [];
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) if (line.startsWith('{')) windows.push(JSON.parse(line));
  });
  await sleep(kind === 'node' ? 600 : 200);
  return { child, windows };
}

const worstBetween = (windows, from, to) => Math.max(0, ...windows.filter((w) => w.t >= from && w.t <= to + 50).map((w) => w.worst));

async function main() {
  const kinds = ['c-sleeping', 'c-busy', 'node'];
  const rows = {};
  for (const kind of kinds) for (const injector of ['ptrace', 'gdb']) rows[`${kind}/${injector}`] = { wall: [], stopped: [], call: [], lag: [], failed: 0 };
  const baselineLag = [];
  const load = [loadavg()[0]];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['ptrace', 'gdb'] : ['gdb', 'ptrace'];
    for (const kind of kinds) {
      for (const injector of order) {
        const target = await startTarget(kind);
        const row = rows[`${kind}/${injector}`];
        try {
          if (kind === 'node') {
            const quietFrom = Date.now();
            await sleep(300);
            baselineLag.push(worstBetween(target.windows, quietFrom, Date.now()));
          }
          const started = Date.now();
          const result = await attachAgent(target.child.pid, { allowInject: true, injector, timeoutMs: 30_000 });
          const ended = Date.now();
          row.wall.push(result.injectorMs);
          row.stopped.push(result.stoppedMs);
          if (result.callMs !== null) row.call.push(result.callMs);
          if (kind === 'node') {
            await sleep(150);
            row.lag.push(worstBetween(target.windows, started, ended));
          }
        } catch (error) {
          row.failed++;
          process.stderr.write(`${kind}/${injector}: ${error.code} ${error.message}\n`);
        } finally {
          target.child.kill('SIGKILL');
          await new Promise((resolve) => target.child.once('exit', resolve));
          rmSync(agentSocketPath(target.child.pid), { force: true });
        }
      }
    }
    load.push(loadavg()[0]);
  }
  const fmt = (values, digits = 1) => (values.length === 0 ? '-' : `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`);
  console.log(`rounds ${ROUNDS}; load average ${Math.min(...load).toFixed(1)}-${Math.max(...load).toFixed(1)}; node ${process.version}`);
  console.log('| target / injector | injector wall ms | target main thread stopped ms (sampled) | borrowed thread in the call ms | Node: worst event-loop lateness ms | failed |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, row] of Object.entries(rows)) {
    console.log(`| ${name} | ${fmt(row.wall, 0)} | ${fmt(row.stopped, 0)} | ${fmt(row.call, 2)} | ${name.startsWith('node') ? fmt(row.lag, 1) : '-'} | ${row.failed} |`);
  }
  console.log(`| node, no attach (baseline) | - | - | - | ${fmt(baselineLag, 1)} | - |`);
  console.log('medians (min-max)');
  for (const kind of kinds) {
    const p = rows[`${kind}/ptrace`];
    const g = rows[`${kind}/gdb`];
    if (p.wall.length && g.wall.length) console.log(`${kind}: injector wall, ptrace/gdb ratio of medians ${(median(p.wall) / median(g.wall)).toFixed(2)}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
