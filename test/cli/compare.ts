import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareCommand, compareText, defaultOutDir, parseCompareArgs, parseUrl, rssSeries } from '../../lib/cli/compare';
import { demoServerPath } from '../../lib/cli/demo';
import { main } from '../../lib/cli/main';
import { readCompareSummary } from '../../lib/compare/summary';
import type { Snapshot } from '../../lib/snapshot';
import { processAlive } from '../../lib/targets/pick';
import { NGINX, nginxConfig, nginxSkip } from '../helpers/nginx';

const bin = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const root = mkdtempSync(join(tmpdir(), 'allocscope-cli-compare-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

t.test('flags: defaults, {port}, and every mistake with its code', async (t) => {
  const o = await parseCompareArgs(['--', 'server', '--listen', '127.0.0.1:{port}']);
  const port = Number(o.url.port);
  t.ok(port > 0, 'a free port was chosen');
  t.same(o.command, ['server', '--listen', `127.0.0.1:${port}`]);
  t.equal(o.url.href, `http://127.0.0.1:${port}/`);
  t.same([o.requests, o.step, o.concurrency, o.repeat, o.durationMs, o.startTimeoutMs, o.json, o.quiet], [200_000, 1000, 10, 1, 600_000, 10_000, false, false]);
  t.same(o.variants.map((v) => v.label), ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc', 'glibc:MALLOC_ARENA_MAX=2']);
  t.same(o.load, { kind: 'builtin' });
  t.match(o.outDir, /^allocscope-compare-\d{8}-\d{6}$/);
  const given = await parseCompareArgs(['--url', 'http://127.0.0.1:9999/x', '--requests', '50', '--allocators', 'jemalloc', '--load', 'ab', '--repeat', '3', '--duration', '2s', '--out', 'd', '--json', '--quiet', '--', 's', '{port}']);
  t.same(given.command, ['s', '9999'], '--url\'s port fills {port}');
  t.equal(given.step, 50, 'the step defaults to at most the requests');
  t.same([given.requests, given.repeat, given.durationMs, given.outDir, given.json, given.quiet], [50, 3, 2000, 'd', true, true]);
  t.equal((await parseCompareArgs(['--url', 'http://127.0.0.1:{port}/p', '--', 's', '{port}'])).url.pathname, '/p');
  t.equal(defaultOutDir(new Date('2026-11-27T13:05:09Z')), 'allocscope-compare-20261127-130509');
  t.equal(parseUrl('http://localhost:81/a', null).href, 'http://localhost:81/a');

  const usage = [
    [],
    ['--url', 'http://127.0.0.1:1/'],
    ['server', '--', 'x'],
    ['--requests', '0', '--', 's', '{port}'],
    ['--requests', '1.5', '--', 's', '{port}'],
    ['--step', '10', '--requests', '5', '--', 's', '{port}'],
    ['--concurrency', '0', '--', 's', '{port}'],
    ['--repeat', '101', '--', 's', '{port}'],
    ['--duration', 'soon', '--', 's', '{port}'],
    ['--what', '--', 's'],
    ['--', 'server-without-port'],
  ];
  for (const argv of usage) await t.rejects(parseCompareArgs(argv), { name: 'UsageError' }, argv.join(' ') || '(nothing)');
  const invalid = [
    ['--allocators', 'ptmalloc', '--', 's', '{port}'],
    ['--load', '[1]', '--', 's', '{port}'],
    ['--url', 'not a url', '--', 's'],
    ['--url', 'https://127.0.0.1:1/', '--', 's'],
  ];
  for (const argv of invalid) await t.rejects(parseCompareArgs(argv), { code: 'EINVAL' }, argv.join(' '));
  const lines: string[] = [];
  t.equal(await main(['compare', '--requests', 'x', '--', 's', '{port}'], () => {}, (l) => lines.push(l)), 2);
  t.equal(await main(['compare', '--allocators', 'x', '--', 's', '{port}'], () => {}, (l) => lines.push(l)), 1);
  t.match(lines.join('\n'), /\[EINVAL\]/);
});

t.test('against nginx (Debian nginx-light) with ab as the load: every variant complete, at the agent level', { skip: nginxSkip() }, async (t) => {
  const conf = await nginxConfig(1);
  t.teardown(() => rmSync(conf.dir, { recursive: true, force: true }));
  // One process: compare samples the process it started, and nginx's master serves no requests.
  const file = join(conf.dir, 'nginx.conf');
  writeFileSync(file, readFileSync(file, 'utf8').replace('master_process on;', 'master_process off;'));
  const out = join(root, 'nginx');
  const result = spawnSync(
    process.execPath,
    [bin, 'compare', '--allocators', 'glibc,jemalloc,glibc:MALLOC_ARENA_MAX=2', '--requests', '2000', '--step', '500', '--load', 'ab', '--url', `http://127.0.0.1:${conf.port}/`, '--out', out, '--json', '--', NGINX, ...conf.args],
    { encoding: 'utf8', timeout: 50_000 },
  );
  t.equal(result.status, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as ReturnType<typeof readCompareSummary> & { dir: string };
  t.equal(summary.dir, out);
  t.equal(summary.load, 'ab');
  t.same(summary.runs.map((r) => r.status), ['complete', 'complete', 'complete']);
  for (const run of summary.runs) {
    t.equal(run.requestsCompleted, 2000, `${run.label}: ab's counts`);
    t.same(run.requestsAtSample, [0, 500, 1000, 1500, 2000]);
    const first = JSON.parse(readFileSync(join(out, run.samplesFile as string), 'utf8').split('\n')[0]) as Snapshot;
    t.equal(first.level, 'agent');
    t.equal(first.allocator.name, run.allocator);
  }
  t.match(result.stderr, /jemalloc: starting the server/);
});

t.test('the text output: table, chart, run directory', async (t) => {
  const out = join(root, 'text');
  const result = spawnSync(process.execPath, [bin, 'compare', '--allocators', 'glibc,glibc:MALLOC_ARENA_MAX=2', '--requests', '3000', '--step', '300', '--out', out, '--quiet', '--', demoServerPath(), '--port', '{port}', '--threads', '2'], {
    encoding: 'utf8',
    timeout: 50_000,
  });
  t.equal(result.status, 0, result.stderr);
  t.equal(result.stderr, '', '--quiet: no progress lines');
  t.match(result.stdout, /variant\s+rank\s+RSS start/);
  t.match(result.stdout, /\nglibc:MALLOC_ARENA_MAX=2\s+\d/);
  t.match(result.stdout, /RSS vs requests\n/);
  t.match(result.stdout, /<- glibc/);
  t.match(result.stdout, /0 requests\s+3000\n/);
  t.match(result.stdout, `Run directory: ${out}`);
  const summary = readCompareSummary(out);
  t.equal(rssSeries(out, summary.runs[0]).length, summary.runs[0].requestsAtSample.length);
  t.same(rssSeries(out, { ...summary.runs[0], samplesFile: null }), []);
  t.same(rssSeries(out, { ...summary.runs[0], samplesFile: 'missing.ndjson' }), summary.runs[0].requestsAtSample.map(() => null));
  t.match(compareText({ ...summary, runs: [], variants: [], ranking: [] }, out, false), /Run directory/);
});

t.test('Ctrl-C mid-compare stops every child it started and keeps the data', async (t) => {
  const out = join(root, 'sigint');
  const child = spawn(process.execPath, [bin, 'compare', '--allocators', 'glibc,jemalloc', '--requests', '100000000', '--step', '200', '--out', out, '--json', '--', demoServerPath(), '--port', '{port}', '--threads', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const file = join(out, 'glibc.r1.ndjson');
  const until = Date.now() + 40_000;
  while (Date.now() < until && !(existsSync(file) && readFileSync(file, 'utf8').split('\n').length > 4)) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(file)) {
    child.kill('SIGKILL');
    t.fail(`no samples within 40 s; compare said: ${stdout}`);
    return;
  }
  const serverPid = (JSON.parse(readFileSync(file, 'utf8').split('\n')[0]) as Snapshot).pid;
  t.ok(processAlive(serverPid), 'the server runs while compare does');
  child.kill('SIGINT');
  const code = await exited;
  t.equal(code, 130);
  t.notOk(processAlive(serverPid), 'the server was stopped');
  const summary = readCompareSummary(out);
  t.equal(summary.endedBy, 'interrupted');
  t.same(summary.runs.map((r) => [r.label, r.status]), [['glibc', 'interrupted']]);
  t.ok(summary.runs[0].requestsAtSample.length >= 4, 'the samples taken are kept');
  t.equal(JSON.parse(stdout).endedBy, 'interrupted');
});

t.test('in process: progress on err, the report on out, exit 0 with a complete run and 1 without', async (t) => {
  const out: string[] = [];
  const err: string[] = [];
  const dir = join(root, 'in-process');
  const code = await compareCommand(['--allocators', 'glibc', '--requests', '600', '--step', '200', '--out', dir, '--', demoServerPath(), '--port', '{port}', '--threads', '2'], (l) => out.push(l), (l) => err.push(l));
  t.equal(code, 0);
  t.match(err.join('\n'), /glibc: starting the server, then 600 requests/);
  t.match(out.join('\n'), /RSS vs requests[\s\S]*Run directory: /);
  t.same(readCompareSummary(dir).runs[0].requestsAtSample, [0, 200, 400, 600]);
  const failed = await compareCommand(['--allocators', 'glibc', '--requests', '10', '--out', join(root, 'in-process-failed'), '--quiet', '--', '/nonexistent/server', '{port}'], (l) => out.push(l), (l) => err.push(l));
  t.equal(failed, 1, 'no run completed');
});
