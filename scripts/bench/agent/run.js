#!/usr/bin/env node
// Agent overhead, A/B in one run (issue 4 "Benchmarks"): each pair of runs is the same workload
// without and with liballocscope_agent.so (sampled at 1 Hz through its socket), alternated so
// the noise of this shared machine falls on both sides; medians and ratios are reported.
//   node scripts/bench/agent/run.js [--rounds 5] [--seconds 3]
'use strict';
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const root = join(__dirname, '..', '..', '..');
const { readAgentSnapshot, agentLibraryPath, agentSocketExists } = require(join(root, 'dist', 'targets', 'agent.js'));

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const ROUNDS = flag('rounds', 5);
const SECONDS = flag('seconds', 3);
const AGENT = agentLibraryPath();
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

function build() {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-bench-agent-'));
  const binary = join(dir, 'malloc_loop');
  execFileSync('gcc', ['-O2', '-o', binary, join(__dirname, 'malloc_loop.c')]);
  return binary;
}

/** Polls the agent of `pid` once a second until `stop()`; returns the round trips in µs. */
function poller(pid) {
  const trips = [];
  let running = true;
  const done = (async () => {
    while (running) {
      if (agentSocketExists(pid)) {
        const start = process.hrtime.bigint();
        try {
          await readAgentSnapshot(pid);
          trips.push(Number(process.hrtime.bigint() - start) / 1000);
        } catch {
          /* the workload may end between the check and the read */
        }
      }
      await sleep(1000);
    }
  })();
  return { trips, stop: async () => { running = false; await done; } };
}

function runLoop(binary, withAgent) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    if (withAgent) env.LD_PRELOAD = AGENT;
    const child = spawn(binary, [String(SECONDS)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const poll = withAgent ? poller(child.pid) : null;
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', async () => {
      if (poll) await poll.stop();
      resolve(Number(out.trim()) / SECONDS);
    });
  });
}

async function mallocBench(binary) {
  const without = [];
  const withAgent = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order each round so neither side always runs first.
    if (round % 2 === 0) {
      without.push(await runLoop(binary, false));
      withAgent.push(await runLoop(binary, true));
    } else {
      withAgent.push(await runLoop(binary, true));
      without.push(await runLoop(binary, false));
    }
  }
  return { without, withAgent, ratio: pairedRatio(withAgent, without) };
}

/** Median of per-round ratios: each round's pair ran back to back, so a drift of the machine's
    speed over the run (which the separate medians would mistake for overhead) cancels out. */
function pairedRatio(withAgent, without) {
  return median(withAgent.map((w, i) => w / without[i]));
}

async function nginxRun(withAgent) {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-bench-nginx-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  writeFileSync(join(dir, 'nginx.conf'), `daemon off;\nmaster_process on;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents { worker_connections 256; }\nhttp {\n access_log off;\n client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;\n server { listen 127.0.0.1:${port}; location / { return 200 "hello\\n"; } }\n}\n`);
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  if (withAgent) env.LD_PRELOAD = AGENT;
  const master = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { env, stdio: 'ignore' });
  for (let i = 0; i < 250 && !existsSync(join(dir, 'nginx.pid')); i++) await sleep(20);
  await sleep(200);
  const worker = Number(readFileSync(`/proc/${master.pid}/task/${master.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  const polls = withAgent ? [poller(master.pid), poller(worker)] : [];
  const ab = spawnSync('/usr/bin/ab', ['-q', '-s', '10', '-t', String(SECONDS), '-n', '1000000', '-c', '8', `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 });
  for (const p of polls) await p.stop();
  master.kill('SIGTERM');
  await new Promise((r) => master.once('exit', r));
  const rps = Number(/Requests per second:\s+([\d.]+)/.exec(ab.stdout)?.[1]);
  const failed = Number(/Failed requests:\s+(\d+)/.exec(ab.stdout)?.[1]);
  return { rps, failed };
}

async function nginxBench() {
  if (!existsSync('/usr/sbin/nginx') || !existsSync('/usr/bin/ab')) return null;
  const without = [];
  const withAgent = [];
  let failed = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [false, true] : [true, false];
    for (const agent of order) {
      const r = await nginxRun(agent);
      (agent ? withAgent : without).push(r.rps);
      failed += r.failed;
    }
  }
  return { without, withAgent, ratio: pairedRatio(withAgent, without), failed };
}

/** CPU ticks of the agent's thread over an idle period with no client. */
async function idleCpu(binary) {
  const child = spawn(join(root, 'build', 'Release', 'heap_workload'), ['steady', '10', '100', '0'], { env: { ...process.env, LD_PRELOAD: AGENT }, stdio: 'ignore' });
  await sleep(500);
  const agentTask = () => readdirSync(`/proc/${child.pid}/task`).find((tid) => readFileSync(`/proc/${child.pid}/task/${tid}/comm`, 'utf8').trim() === 'allocscope');
  const ticks = (tid) => {
    const stat = readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  };
  const tid = agentTask();
  const before = ticks(tid);
  await sleep(5000);
  const after = ticks(tid);
  child.kill('SIGKILL');
  return { seconds: 5, ticks: after - before };
}

/** Round trips over one connection kept open (the agent serves 64 requests per connection). */
function persistentTrips(path, count) {
  const { createConnection } = require('node:net');
  return new Promise((resolve, reject) => {
    const trips = [];
    let socket = null;
    let sent = 0;
    let start = 0n;
    let buffered = '';
    const next = () => {
      if (trips.length === count) {
        socket.destroy();
        return resolve(trips);
      }
      if (socket === null || sent === 64) {
        if (socket !== null) socket.destroy();
        socket = createConnection(path);
        sent = 0;
        buffered = '';
        socket.on('error', reject);
        socket.on('data', (chunk) => {
          buffered += chunk;
          if (!buffered.includes('\n')) return;
          buffered = '';
          trips.push(Number(process.hrtime.bigint() - start) / 1000);
          next();
        });
        socket.once('connect', send);
        return;
      }
      send();
    };
    const send = () => {
      sent++;
      start = process.hrtime.bigint();
      socket.write('{"v":1,"op":"snapshot"}\n');
    };
    next();
  });
}

/** Round trips of 1000 sequential snapshot requests: through the client (a connection per
    request, JSON parsed, Snapshot assembled) and over a kept-open connection (the agent alone). */
async function roundTrips(label, env, args) {
  const child = spawn(join(root, 'build', 'Release', 'heap_workload'), args, { env: { ...process.env, ...env }, stdio: 'ignore' });
  for (let i = 0; i < 100 && !agentSocketExists(child.pid); i++) await sleep(20);
  await sleep(300);
  const trips = [];
  let arenas = null;
  for (let i = 0; i < 1000; i++) {
    const start = process.hrtime.bigint();
    const s = await readAgentSnapshot(child.pid);
    trips.push(Number(process.hrtime.bigint() - start) / 1000);
    arenas = s.raw.jemalloc?.['arenas.narenas'] ?? null;
  }
  const { agentSocketPath } = require(join(root, 'dist', 'targets', 'agent.js'));
  const raw = await persistentTrips(agentSocketPath(child.pid), 1000);
  child.kill('SIGKILL');
  return {
    label,
    client: { p50: quantile(trips, 0.5), p99: quantile(trips, 0.99) },
    keptOpen: { p50: quantile(raw, 0.5), p99: quantile(raw, 0.99) },
    narenas: arenas,
  };
}

async function main() {
  const binary = build();
  const malloc = await mallocBench(binary);
  const nginx = await nginxBench();
  const idle = await idleCpu(binary);
  const trips = [await roundTrips('glibc, healthy heap', { LD_PRELOAD: AGENT }, ['steady', '10', '50', '0'])];
  if (existsSync(JEMALLOC)) trips.push(await roundTrips('jemalloc, 8 threads allocating', { LD_PRELOAD: `${JEMALLOC}:${AGENT}` }, ['fragment', '8', '50', '0']));
  const result = { rounds: ROUNDS, seconds: SECONDS, loadavg: require('node:os').loadavg(), malloc, nginx, idle, trips };
  console.log(JSON.stringify(result, null, 2));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
