#!/usr/bin/env node
'use strict';
// Soak (issue 6): Debian's nginx (one worker) on 127.0.0.1 serving N requests under ab, once
// without allocscope and once with the agent preloaded (master and worker) while `profile-pid
// --children` reads it at 1 Hz through the agent. Reports the server's RSS (master + worker, from
// /proc) after each soak, the difference, profile-pid's own RSS over the run (sampled every
// second: first, max, last), ab's failed requests, and the samples profile-pid wrote.
//   node scripts/bench/soak/run.js [--requests 200000] [--concurrency 8]
const { spawn } = require('node:child_process');
const { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { createServer } = require('node:net');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { flagReader } = require('../common');

const root = join(__dirname, '..', '..', '..');
const args = process.argv.slice(2);
const flag = flagReader(args);
const REQUESTS = flag('requests', 200_000);
const CONCURRENCY = flag('concurrency', 8);
const AGENT = join(root, 'build', 'Release', 'liballocscope_agent.so');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** RSS of a pid in bytes from /proc/PID/statm; 0 once it is gone. */
function rssOf(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

const childrenOf = (pid) => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

async function startNginx(env) {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-soak-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;\nmaster_process on;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\n` +
      `events { worker_connections 256; }\nhttp {\n access_log off;\n client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n` +
      ` server { listen 127.0.0.1:${port}; location / { return 200 "hello from nginx\\n"; } }\n}\n`,
  );
  const child = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { env, stdio: 'ignore' });
  const until = Date.now() + 10_000;
  while (Date.now() < until && childrenOf(child.pid).length < 1) await sleep(20);
  return { dir, port, child, master: child.pid, worker: childrenOf(child.pid)[0] };
}

function runAb(port) {
  return new Promise((resolve) => {
    const ab = spawn('/usr/bin/ab', ['-q', '-s', '10', '-n', String(REQUESTS), '-c', String(CONCURRENCY), `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    ab.stdout.on('data', (chunk) => (out += chunk));
    const killer = setTimeout(() => ab.kill('SIGKILL'), 600_000);
    ab.on('close', () => {
      clearTimeout(killer);
      const number = (label) => Number(new RegExp(`${label}:\\s+([\\d.]+)`).exec(out)?.[1] ?? Number.NaN);
      resolve({ complete: number('Complete requests'), failed: number('Failed requests'), rps: number('Requests per second') });
    });
  });
}

async function soak(withAgent) {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  if (withAgent) env.LD_PRELOAD = AGENT;
  const nginx = await startNginx(env);
  const rssBefore = rssOf(nginx.master) + rssOf(nginx.worker);
  let profiler = null;
  const profilerRss = [];
  const out = join(nginx.dir, 'soak.ndjson');
  if (withAgent) {
    profiler = spawn(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'profile-pid', String(nginx.master), '--children', '--interval', '1s', '--duration', '30m', '--out', out, '--quiet'], { stdio: 'ignore' });
  }
  const sampler = setInterval(() => profiler !== null && profilerRss.push(rssOf(profiler.pid)), 1000);
  const started = Date.now();
  const load = await runAb(nginx.port);
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const rssAfter = rssOf(nginx.master) + rssOf(nginx.worker);
  let samples = 0;
  if (profiler !== null) {
    profiler.kill('SIGINT');
    await new Promise((resolve) => profiler.once('exit', resolve));
    samples = existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).length : 0;
  }
  nginx.child.kill('SIGTERM');
  await new Promise((resolve) => nginx.child.once('exit', resolve));
  rmSync(nginx.dir, { recursive: true, force: true });
  return { withAgent, seconds, ...load, rssBefore, rssAfter, profilerRss, samples };
}

async function main() {
  const without = await soak(false);
  const withAgent = await soak(true);
  const MiB = 1048576;
  const p = withAgent.profilerRss.filter((v) => v > 0);
  const report = {
    date: new Date().toISOString(),
    requests: REQUESTS,
    without,
    withAgent: { ...withAgent, profilerRss: undefined },
    serverRssDeltaBytes: withAgent.rssAfter - without.rssAfter,
    profilerRssBytes: { first: p[0] ?? null, max: Math.max(...p), last: p[p.length - 1] ?? null, samples: p.length },
  };
  if (args.includes('--json')) return console.log(JSON.stringify(report, null, 2));
  const mib = (b) => `${(b / MiB).toFixed(2)} MiB`;
  console.log(`soak: ${REQUESTS} requests, ab -c ${CONCURRENCY}, nginx 1 worker`);
  for (const r of [without, withAgent]) {
    console.log(`${r.withAgent ? 'with agent + profile-pid 1 Hz' : 'without allocscope'}: ${r.complete} complete, ${r.failed} failed, ${r.rps} req/s, ${r.seconds.toFixed(0)} s; server RSS ${mib(r.rssBefore)} -> ${mib(r.rssAfter)}`);
  }
  console.log(`server RSS with the agent minus without, after the soak: ${mib(report.serverRssDeltaBytes)}`);
  console.log(`profile-pid RSS: first ${mib(report.profilerRssBytes.first)}, max ${mib(report.profilerRssBytes.max)}, last ${mib(report.profilerRssBytes.last)} (${p.length} readings); samples written: ${withAgent.samples}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
