#!/usr/bin/env node
// Agent overhead, A/B in one run (issue 4 "Benchmarks"): the same workload without and with
// liballocscope_agent.so (read at 1 Hz through its socket), interleaved so the noise of this
// shared machine falls on both sides. Wall-clock throughput varies 6-15% from run to run here,
// so beside it the script measures what does not: CPU time per operation (every thread of the
// process, ns) over many interleaved runs of a fixed amount of work, with bootstrap 95%
// confidence intervals of the median paired ratio, and instructions per operation (valgrind
// callgrind, deterministic).
//   node scripts/bench/agent/run.js [--pairs 30] [--ops 8000000] [--nginx-pairs 12]
//                                   [--requests 20000] [--trip-bursts 15]
//                                   [--skip instructions,nginx-instructions,snapshot-cost,malloc,nginx,idle,trips]
'use strict';
const { bootstrapMedian, cpuTicks, flagReader, median, stealShare } = require('../common');
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const root = join(__dirname, '..', '..', '..');
const { readAgentSnapshot, agentLibraryPath, agentSocketExists } = require(join(root, 'dist', 'targets', 'agent.js'));

const args = process.argv.slice(2);
const flag = flagReader(args);
const skip = new Set(args.includes('--skip') ? args[args.indexOf('--skip') + 1].split(',') : []);
const PAIRS = flag('pairs', 30);
const OPS = flag('ops', 8_000_000);
const NGINX_PAIRS = flag('nginx-pairs', 12);
const REQUESTS = flag('requests', 20_000);
const TRIP_BURSTS = flag('trip-bursts', 15);
const AGENT = agentLibraryPath();
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

/** trip_client.c, built by build(). */
let tripClient = null;

function build() {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-bench-agent-'));
  const binary = join(dir, 'malloc_loop');
  const threadOnly = join(dir, 'thread_only.so');
  tripClient = join(dir, 'trip_client');
  execFileSync('gcc', ['-O2', '-o', binary, join(__dirname, 'malloc_loop.c')]);
  execFileSync('gcc', ['-O2', '-shared', '-fPIC', '-o', threadOnly, join(__dirname, 'thread_only.c'), '-lpthread']);
  execFileSync('gcc', ['-O2', '-o', tripClient, join(__dirname, 'trip_client.c')]);
  return { binary, threadOnly };
}

/** Polls the agent of `pid` every `periodMs` (the first read `firstMs` after its socket appears)
    until `stop()`; returns the round trips in µs. */
function poller(pid, periodMs = 1000, firstMs = periodMs) {
  const trips = [];
  let running = true;
  const done = (async () => {
    let wait = firstMs;
    while (running) {
      if (!agentSocketExists(pid)) {
        await sleep(5);
        continue;
      }
      await sleep(wait);
      wait = periodMs;
      if (running && agentSocketExists(pid)) {
        const start = process.hrtime.bigint();
        try {
          await readAgentSnapshot(pid);
          trips.push(Number(process.hrtime.bigint() - start) / 1000);
        } catch {
          /* the workload may end between the check and the read */
        }
      }
    }
  })();
  return { trips, stop: async () => { running = false; await done; } };
}

/** Sum of on-CPU ns of every thread of `pid` (/proc/PID/task/TID/schedstat, first field): ns
    resolution, unlike the 10 ms ticks of stat. Threads that vanish meanwhile are skipped. */
function cpuNs(pid) {
  let total = 0;
  let tasks = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return total;
  }
  for (const tid of tasks) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* the thread ended */
    }
  }
  return total;
}

/** utime and stime of a process in clock ticks (/proc/PID/stat fields 14 and 15). */
function userSystemTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]), system: Number(fields[12]) };
}

/** One run of the malloc loop over a fixed number of operations. `preload`: null, or a library;
    `poll`: read the agent at 1 Hz (the first read as soon as its socket exists). */
function runLoop(binary, preload, poll, ops = OPS) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    if (preload !== null) env.LD_PRELOAD = preload;
    const child = spawn(binary, ['0', String(ops)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const polling = poll ? poller(child.pid, 1000, 10) : null;
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', async () => {
      if (polling) await polling.stop();
      const [done, cpu, wall] = out.trim().split(' ').map(Number);
      resolve({ cpuNsPerOp: cpu / done, opsPerSecond: done / (wall / 1e9), reads: polling ? polling.trips.length : 0 });
    });
  });
}

/** PAIRS interleaved triples (plain, a preload that only starts one idle thread, the agent read at
    1 Hz), the order rotated each round; paired ratios against plain with bootstrap CIs. */
async function mallocBench(binary, threadOnly) {
  const arms = { plain: [null, false], thread: [threadOnly, false], agent: [AGENT, true] };
  const names = Object.keys(arms);
  const runs = { plain: [], thread: [], agent: [] };
  let reads = 0;
  for (let round = 0; round < PAIRS; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      const r = await runLoop(binary, ...arms[name]);
      runs[name].push(r);
      reads += r.reads;
    }
  }
  const ratio = (arm, key) => bootstrapMedian(runs[arm].map((r, i) => r[key] / runs.plain[i][key]));
  return {
    ops: OPS,
    pairs: PAIRS,
    agentReads: reads,
    cpuNsPerOp: { plain: median(runs.plain.map((r) => r.cpuNsPerOp)), thread: median(runs.thread.map((r) => r.cpuNsPerOp)), agent: median(runs.agent.map((r) => r.cpuNsPerOp)) },
    cpuPerOpRatio: { thread: ratio('thread', 'cpuNsPerOp'), agent: ratio('agent', 'cpuNsPerOp') },
    throughputRatio: { thread: ratio('thread', 'opsPerSecond'), agent: ratio('agent', 'opsPerSecond') },
  };
}

/** Instructions (valgrind callgrind: every thread, deterministic) per malloc-loop operation,
    from the difference of a 1,000,000-op run and a 1,000-op run (start-up cancels out). */
function instructions(binary, preload, extraEnv = {}) {
  const count = (ops) => {
    const env = { ...process.env, ...extraEnv };
    delete env.LD_PRELOAD;
    if (preload !== null) env.LD_PRELOAD = preload;
    const out = join(mkdtempSync(join(tmpdir(), 'allocscope-bench-cg-')), 'cg.out');
    const run = spawnSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, binary, '0', String(ops)], { env, encoding: 'utf8', timeout: 300_000 });
    return Number(/Collected : (\d+)/.exec(run.stderr)?.[1]);
  };
  const big = 1_000_000;
  return (count(big) - count(1000)) / (big - 1000);
}

/** Instructions per request of nginx's worker (callgrind, every thread of the worker, its
    agent's included), from the difference of a LOW- and a HIGH-request run under ab -c 8. With the
    agent, its master and worker are read at 1 Hz of wall time; under valgrind's ~50x slowdown that
    is ~50x more reads per request than at full speed, so the figure bounds the 1 Hz cost from above. */
async function nginxInstructions(withAgent, low = 1000, high = 5000) {
  const count = async (requests) => {
    const dir = mkdtempSync(join(tmpdir(), 'allocscope-bench-nginx-cg-'));
    const port = 20000 + Math.floor(Math.random() * 20000);
    writeFileSync(join(dir, 'nginx.conf'), `daemon off;\nmaster_process on;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents { worker_connections 256; }\nhttp {\n access_log off;\n client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;\n server { listen 127.0.0.1:${port}; location / { return 200 "hello\\n"; } }\n}\n`);
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    if (withAgent) env.LD_PRELOAD = AGENT;
    // The worker runs as nobody when started by root: its counts go to a directory it may write.
    const out = join(dir, 'cg');
    mkdirSync(out);
    chmodSync(dir, 0o755);
    chmodSync(out, 0o1777);
    const master = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}/cg.%p`, '/usr/sbin/nginx', '-c', join(dir, 'nginx.conf'), '-p', dir], { env, stdio: 'ignore' });
    const children = () => {
      try {
        return readFileSync(`/proc/${master.pid}/task/${master.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    };
    for (let i = 0; i < 1500 && (!existsSync(join(dir, 'nginx.pid')) || children().length === 0); i++) await sleep(20);
    await sleep(1000);
    const worker = children()[0];
    const polls = withAgent ? [poller(master.pid), poller(worker)] : [];
    const ab = await abRun(port, requests, 600_000);
    let reads = 0;
    for (const p of polls) {
      await p.stop();
      reads += p.trips.length;
    }
    // The worker first, and wait for it to end: callgrind writes its counts at exit, which under
    // valgrind takes longer than the 1 s nginx's master grants its workers before a SIGKILL.
    process.kill(worker, 'SIGTERM');
    for (let i = 0; i < 1500 && existsSync(`/proc/${worker}`); i++) await sleep(20);
    master.kill('SIGTERM');
    await new Promise((r) => master.once('exit', r));
    const text = readFileSync(join(out, `cg.${worker}`), 'utf8');
    const complete = Number(/Complete requests:\s+(\d+)/.exec(ab)?.[1]);
    return { ir: Number(/^summary: (\d+)/m.exec(text)?.[1] ?? /^totals: (\d+)/m.exec(text)?.[1]), complete, reads };
  };
  const a = await count(low);
  const b = await count(high);
  return { perRequest: (b.ir - a.ir) / (b.complete - a.complete), reads: a.reads + b.reads, requests: [a.complete, b.complete] };
}

/** CPU ns the agent's thread spends per snapshot (schedstat over 1,000 kept-open requests). */
async function agentNsPerSnapshot(binary, preload) {
  const child = spawn(binary, ['60'], { env: { ...process.env, LD_PRELOAD: preload }, stdio: 'ignore' });
  for (let i = 0; i < 100 && !agentSocketExists(child.pid); i++) await sleep(20);
  await sleep(200);
  const tid = readdirSync(`/proc/${child.pid}/task`).find((t) => readFileSync(`/proc/${child.pid}/task/${t}/comm`, 'utf8').trim() === 'allocscope');
  const ns = () => Number(readFileSync(`/proc/${child.pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  const { agentSocketPath } = require(join(root, 'dist', 'targets', 'agent.js'));
  const before = ns();
  await persistentTrips(agentSocketPath(child.pid), 1000);
  const after = ns();
  child.kill('SIGKILL');
  return (after - before) / 1000;
}

/** ab -c 8 for `requests` requests; its output. Asynchronous, so the 1 Hz pollers keep running. */
function abRun(port, requests, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/ab', ['-q', '-s', '30', '-n', String(requests), '-c', '8', `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
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
  const cpuBefore = cpuNs(master.pid) + cpuNs(worker);
  const ticksBefore = [userSystemTicks(master.pid), userSystemTicks(worker)];
  // A fixed number of requests (not a fixed time): CPU per request compares the same work.
  const ab = await abRun(port, REQUESTS, 120_000);
  const cpu = cpuNs(master.pid) + cpuNs(worker) - cpuBefore;
  const ticksAfter = [userSystemTicks(master.pid), userSystemTicks(worker)];
  const user = ticksAfter[0].user + ticksAfter[1].user - ticksBefore[0].user - ticksBefore[1].user;
  const system = ticksAfter[0].system + ticksAfter[1].system - ticksBefore[0].system - ticksBefore[1].system;
  let reads = 0;
  for (const p of polls) {
    await p.stop();
    reads += p.trips.length;
  }
  master.kill('SIGTERM');
  await new Promise((r) => master.once('exit', r));
  const rps = Number(/Requests per second:\s+([\d.]+)/.exec(ab)?.[1]);
  const failed = Number(/Failed requests:\s+(\d+)/.exec(ab)?.[1]);
  const complete = Number(/Complete requests:\s+(\d+)/.exec(ab)?.[1]);
  return { rps, failed, cpuNsPerRequest: cpu / complete, reads, userShare: user / (user + system) };
}

async function nginxBench() {
  if (!existsSync('/usr/sbin/nginx') || !existsSync('/usr/bin/ab')) return null;
  const without = [];
  const withAgent = [];
  let failed = 0;
  let reads = 0;
  for (let round = 0; round < NGINX_PAIRS; round++) {
    const order = round % 2 === 0 ? [false, true] : [true, false];
    for (const agent of order) {
      const r = await nginxRun(agent);
      (agent ? withAgent : without).push(r);
      failed += r.failed;
      reads += r.reads;
    }
  }
  return {
    pairs: NGINX_PAIRS,
    requests: REQUESTS,
    failed,
    agentReads: reads,
    cpuNsPerRequest: { without: median(without.map((r) => r.cpuNsPerRequest)), withAgent: median(withAgent.map((r) => r.cpuNsPerRequest)) },
    // The share of that CPU spent in user space (the part valgrind's instruction counts see).
    userShare: { without: median(without.map((r) => r.userShare)), withAgent: median(withAgent.map((r) => r.userShare)) },
    cpuPerRequestRatio: bootstrapMedian(withAgent.map((r, i) => r.cpuNsPerRequest / without[i].cpuNsPerRequest)),
    rps: { without: median(without.map((r) => r.rps)), withAgent: median(withAgent.map((r) => r.rps)) },
    throughputRatio: bootstrapMedian(withAgent.map((r, i) => r.rps / without[i].rps)),
  };
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
    request, JSON parsed, Snapshot assembled) and over a kept-open connection (the agent alone);
    then TRIP_BURSTS bursts of 1000 from C, each with the steal time of its moment. On this
    virtual machine the hypervisor takes the vCPUs away for milliseconds at a time (steal), and a
    request caught by that waits for it, agent or not: a burst's p99 follows its steal
    (RESULTS.md), so each burst says its steal, and the bursts without any are summed up apart. */
async function roundTrips(label, env, args) {
  const child = spawn(join(root, 'build', 'Release', 'heap_workload'), args, { env: { ...process.env, ...env }, stdio: 'ignore' });
  for (let i = 0; i < 100 && !agentSocketExists(child.pid); i++) await sleep(20);
  await sleep(300);
  const trips = [];
  let arenas = null;
  const nodeStart = cpuTicks();
  for (let i = 0; i < 1000; i++) {
    const start = process.hrtime.bigint();
    const s = await readAgentSnapshot(child.pid);
    trips.push(Number(process.hrtime.bigint() - start) / 1000);
    arenas = s.raw.jemalloc?.['arenas.narenas'] ?? null;
  }
  const nodeSteal = stealShare(nodeStart, cpuTicks());
  const { agentSocketPath } = require(join(root, 'dist', 'targets', 'agent.js'));
  const raw = await persistentTrips(agentSocketPath(child.pid), 1000);
  // The agent's thread: on-CPU and run-queue-wait ns (schedstat's first two fields), to split a
  // burst's mean round trip into the agent's work and its wait for a CPU.
  const tid = readdirSync(`/proc/${child.pid}/task`).find((t) => readFileSync(`/proc/${child.pid}/task/${t}/comm`, 'utf8').trim() === 'allocscope');
  const sched = () => readFileSync(`/proc/${child.pid}/task/${tid}/schedstat`, 'utf8').split(' ').slice(0, 2).map(Number);
  const bursts = [];
  for (let i = 0; i < TRIP_BURSTS; i++) {
    const before = cpuTicks();
    const [onCpuBefore, waitBefore] = sched();
    const fromC = spawnSync(tripClient, [agentSocketPath(child.pid), '1000'], { encoding: 'utf8', timeout: 60_000 });
    const [onCpuAfter, waitAfter] = sched();
    const steal = stealShare(before, cpuTicks());
    const cTrips = fromC.stdout.split('\n').filter((l) => l !== '').map(Number);
    if (cTrips.length !== 1000) {
      bursts.push({ error: `trip_client exited ${fromC.status}` });
      continue;
    }
    bursts.push({
      stealPercent: +steal.toFixed(1),
      p50: quantile(cTrips, 0.5),
      p99: quantile(cTrips, 0.99),
      agentOnCpuUs: +((onCpuAfter - onCpuBefore) / 1000 / 1000).toFixed(1),
      agentRunQueueWaitUs: +((waitAfter - waitBefore) / 1000 / 1000).toFixed(1),
    });
  }
  child.kill('SIGKILL');
  const measured = bursts.filter((b) => b.error === undefined);
  const calm = measured.filter((b) => b.stealPercent < 1);
  return {
    label,
    client: { p50: quantile(trips, 0.5), p99: quantile(trips, 0.99), stealPercent: +nodeSteal.toFixed(1) },
    keptOpen: { p50: quantile(raw, 0.5), p99: quantile(raw, 0.99) },
    // The same requests and reconnections from C: without the Node client's event loop.
    cClient: {
      bursts,
      medianP99: measured.length > 0 ? median(measured.map((b) => b.p99)) : null,
      calmBursts: calm.length,
      calmMedianP99: calm.length > 0 ? median(calm.map((b) => b.p99)) : null,
      calmMaxP99: calm.length > 0 ? Math.max(...calm.map((b) => b.p99)) : null,
    },
    narenas: arenas,
  };
}

async function main() {
  const { binary, threadOnly } = build();
  const result = { date: new Date().toISOString(), loadavgBefore: require('node:os').loadavg() };
  const valgrind = existsSync('/usr/bin/valgrind'); // Debian's valgrind: apt-get install valgrind
  if (!valgrind) result.note = 'valgrind is not installed: the instruction counts were skipped';
  if (!skip.has('instructions') && valgrind) {
    const plain = instructions(binary, null);
    const thread = instructions(binary, threadOnly);
    const agent = instructions(binary, AGENT);
    // The agent told not to keep the host single-threaded: the cost it avoids by default.
    const agentThreaded = instructions(binary, AGENT, { ALLOCSCOPE_AGENT_SINGLE_THREADED: '0' });
    // A host that already has threads of its own: the agent's thread changes nothing in malloc.
    const threadAgent = instructions(binary, `${threadOnly}:${AGENT}`);
    result.instructionsPerOp = {
      glibc: {
        plain,
        thread,
        agent,
        agentThreaded,
        agentRatio: agent / plain,
        agentThreadedRatio: agentThreaded / plain,
        threadRatio: thread / plain,
        threadedHost: { plain: thread, agent: threadAgent, agentRatio: threadAgent / thread },
      },
    };
    if (existsSync(JEMALLOC)) {
      const je = instructions(binary, JEMALLOC);
      const jeAgent = instructions(binary, `${JEMALLOC}:${AGENT}`);
      result.instructionsPerOp.jemalloc = { plain: je, agent: jeAgent, agentRatio: jeAgent / je };
    }
  }
  if (!skip.has('nginx-instructions') && valgrind && existsSync('/usr/sbin/nginx') && existsSync('/usr/bin/ab')) {
    const without = await nginxInstructions(false);
    const withAgent = await nginxInstructions(true);
    result.nginxInstructionsPerRequest = { without, withAgent, ratio: withAgent.perRequest / without.perRequest };
  }
  if (!skip.has('snapshot-cost')) {
    result.agentNsPerSnapshot = { glibc: await agentNsPerSnapshot(binary, AGENT) };
    if (existsSync(JEMALLOC)) result.agentNsPerSnapshot.jemalloc = await agentNsPerSnapshot(binary, `${JEMALLOC}:${AGENT}`);
  }
  if (!skip.has('malloc')) result.malloc = await mallocBench(binary, threadOnly);
  if (!skip.has('nginx')) result.nginx = await nginxBench();
  if (!skip.has('idle')) result.idle = await idleCpu(binary);
  if (!skip.has('trips')) {
    result.trips = [await roundTrips('glibc, healthy heap', { LD_PRELOAD: AGENT }, ['steady', '10', '50', '0'])];
    if (existsSync(JEMALLOC)) {
      // 8 arenas made by 8 threads, which then sleep (one burst of 2,000 allocations each, then a
      // minute's pause): the agent's own round trip on a jemalloc with 8 arenas ...
      result.trips.push(await roundTrips('jemalloc, 8 arenas, their threads idle', { LD_PRELOAD: `${JEMALLOC}:${AGENT}` }, ['fragment', '8', '60000', '0']));
      // ... and with the 8 threads allocating in bursts every 50 ms, taking the locks the epoch's
      // merge of their arenas' stats needs, on this 2-vCPU machine.
      result.trips.push(await roundTrips('jemalloc, 8 threads allocating', { LD_PRELOAD: `${JEMALLOC}:${AGENT}` }, ['fragment', '8', '50', '0']));
    }
  }
  result.loadavgAfter = require('node:os').loadavg();
  console.log(JSON.stringify(result, null, 2));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
