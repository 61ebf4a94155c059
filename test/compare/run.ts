import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoServerPath } from '../../lib/cli/demo';
import { prepareOutDir, runCompare, samplesFileName, type CompareOptions } from '../../lib/compare/run';
import { freePort } from '../../lib/compare/server';
import { readCompareSummary } from '../../lib/compare/summary';
import { parseVariants } from '../../lib/compare/variants';
import type { Snapshot } from '../../lib/snapshot';
import { processAlive } from '../../lib/targets/pick';

const CRASH_SERVER = join(__dirname, '..', 'helpers', 'crash-server.js');
const root = mkdtempSync(join(tmpdir(), 'allocscope-compare-run-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

async function options(command: (port: number) => string[], overrides: Partial<CompareOptions> = {}): Promise<CompareOptions> {
  const port = await freePort();
  return {
    command: command(port),
    variants: parseVariants('glibc'),
    requests: 2000,
    step: 500,
    concurrency: 4,
    url: new URL(`http://127.0.0.1:${port}/`),
    load: { kind: 'builtin' },
    repeat: 1,
    outDir: join(root, `run-${++dirs}`),
    durationMs: 30_000,
    startTimeoutMs: 10_000,
    ...overrides,
  };
}

function samplesOf(dir: string, file: string | null): Snapshot[] {
  return readFileSync(join(dir, file as string), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Snapshot);
}

t.test('small parts', async (t) => {
  t.equal(samplesFileName('glibc:MALLOC_ARENA_MAX=2', 0), 'glibc-MALLOC_ARENA_MAX-2.r1.ndjson');
  const dir = join(root, 'busy');
  prepareOutDir(dir);
  prepareOutDir(dir);
  writeFileSync(join(dir, 'x'), '');
  t.throws(() => prepareOutDir(dir), { code: 'EINVAL' }, 'a directory with files in it is refused');
  t.throws(() => prepareOutDir(join(dir, 'x', 'sub')), { code: 'EINVAL' }, 'a directory below a file');
});

t.test('the bundled server under two variants: samples at every step, figures, summary on disk', async (t) => {
  const progress: string[] = [];
  const o = await options((port) => [demoServerPath(), '--port', String(port), '--threads', '2'], {
    variants: parseVariants('glibc,glibc:MALLOC_ARENA_MAX=2'),
    progress: (line) => progress.push(line),
  });
  const summary = await runCompare(o);
  t.same(readCompareSummary(o.outDir), JSON.parse(JSON.stringify(summary)), 'summary.json is what runCompare returned');
  t.equal(summary.endedBy, 'done');
  t.type(summary.finishedAt, 'string');
  t.same(summary.runs.map((r) => [r.label, r.status]), [['glibc', 'complete'], ['glibc:MALLOC_ARENA_MAX=2', 'complete']]);
  for (const run of summary.runs) {
    t.equal(run.requestsCompleted, 2000);
    t.equal(run.requestsFailed, 0);
    t.same(run.requestsAtSample, [0, 500, 1000, 1500, 2000], 'a sample before the load and one per step');
    const samples = samplesOf(o.outDir, run.samplesFile);
    t.equal(samples.length, run.requestsAtSample.length, 'one NDJSON line per sample');
    t.ok(samples.every((s) => s.level === 'agent' && s.allocator.name === 'glibc'), 'read through the agent');
    t.notOk(processAlive(samples[0].pid), 'the server was stopped');
    t.equal(run.rssStartBytes, samples[0].processBytes.rss);
    t.equal(run.rssEndBytes, samples[samples.length - 1].processBytes.rss);
    t.ok((run.rssEndBytes ?? 0) > (run.rssStartBytes ?? 0), 'the server grew under load');
    t.type(run.rssGrowthPer10kRequests, 'number');
    t.ok((run.liveBytesEnd ?? 0) > 0);
    t.ok((run.requestsPerSecond ?? 0) > 0);
    t.equal(run.verdict, 'insufficient-data', 'a second of samples is too short for a verdict');
  }
  t.same(summary.runs[1].env, { MALLOC_ARENA_MAX: '2' });
  t.equal(summary.variants?.length, 2);
  t.equal(summary.ranking.length, 2);
  t.match(progress.join('\n'), /glibc: starting the server, then 2000 requests \(at most 30\.0 s\) \.\.\.\nglibc: complete/);
});

t.test('a variant that crashes mid-run is reported with its samples; the others complete', async (t) => {
  const o = await options((port) => [process.execPath, CRASH_SERVER, String(port)], {
    variants: parseVariants('glibc:CRASH_AFTER=700,jemalloc:EXIT_ON_TERM=3,glibc'),
    requests: 1000,
    step: 250,
  });
  const summary = await runCompare(o);
  const [crashed, exitsNonZero, plain] = summary.runs;
  t.equal(crashed.status, 'failed');
  t.equal(crashed.error?.code, 'ESRCH');
  t.match(crashed.error?.message, /signal SIGABRT\) during the load, after \d+ requests; it said: /);
  t.ok(crashed.requestsAtSample.length >= 2, 'samples before the crash are kept');
  t.equal(samplesOf(o.outDir, crashed.samplesFile).length, crashed.requestsAtSample.length);
  t.equal(exitsNonZero.status, 'complete', 'exit status 3 on SIGTERM after the load is still a complete run');
  t.equal(exitsNonZero.requestsCompleted, 1000);
  t.equal(plain.status, 'complete');
  t.same(summary.ranking.sort(), ['glibc', 'jemalloc:EXIT_ON_TERM=3']);
});

t.test('servers that cannot start fail one by one; repeats run repetition by repetition', async (t) => {
  const o = await options(() => ['/nonexistent/server'], { variants: parseVariants('glibc,jemalloc'), repeat: 2 });
  const summary = await runCompare(o);
  t.same(summary.runs.map((r) => [r.label, r.repeat, r.status, r.error?.code]), [
    ['glibc', 0, 'failed', 'EINVAL'],
    ['jemalloc', 0, 'failed', 'EINVAL'],
    ['glibc', 1, 'failed', 'EINVAL'],
    ['jemalloc', 1, 'failed', 'EINVAL'],
  ]);
  t.same(summary.ranking, []);
  t.equal(summary.repeatCount, 2);
});

t.test('the load failing (the server answers errors) fails that run', async (t) => {
  const o = await options((port) => [process.execPath, '-e', `require('node:http').createServer((q, s) => { s.statusCode = 500; s.end(); }).listen(${port}, '127.0.0.1')`], { requests: 500, step: 100 });
  const summary = await runCompare(o);
  t.equal(summary.runs[0].status, 'failed');
  t.equal(summary.runs[0].error?.code, 'EPROTO');
});

t.test('interrupted: the run in progress keeps its samples, later variants do not run, the server is stopped', async (t) => {
  const controller = new AbortController();
  const o = await options((port) => [demoServerPath(), '--port', String(port), '--threads', '2'], {
    variants: parseVariants('glibc,jemalloc'),
    requests: 100_000_000,
    step: 200,
    signal: controller.signal,
  });
  const timer = setInterval(() => {
    try {
      if (readFileSync(join(o.outDir, samplesFileName('glibc', 0)), 'utf8').split('\n').length > 3) controller.abort();
    } catch {
      /* not yet */
    }
  }, 50);
  const summary = await runCompare(o);
  clearInterval(timer);
  t.equal(summary.endedBy, 'interrupted');
  t.equal(summary.runs.length, 1);
  t.equal(summary.runs[0].status, 'interrupted');
  t.equal(summary.runs[0].error?.code, 'ECANCELED');
  const samples = samplesOf(o.outDir, summary.runs[0].samplesFile);
  t.ok(samples.length >= 3);
  t.notOk(processAlive(samples[0].pid));
  t.equal(readCompareSummary(o.outDir).endedBy, 'interrupted');
  const before = await options(() => ['/bin/true'], { signal: AbortSignal.abort() });
  t.same((await runCompare(before)).runs, [], 'aborted before the first run: nothing runs');
});

t.test('runs read through /proc (no agent answers) let their /proc files go: a long compare does not run out of descriptors', async (t) => {
  // env drops LD_PRELOAD before exec'ing the server: no agent in it, so each run's source is the
  // procfs kind, which holds status and statm open until it is closed.
  const server = (port: number) => ['env', '-u', 'LD_PRELOAD', process.execPath, '-e', `require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1')`];
  const openFds = () => readdirSync('/proc/self/fd').length;
  const before = openFds();
  const o = await options(server, { variants: parseVariants('glibc'), repeat: 2, requests: 400, step: 200 });
  const summary = await runCompare(o);
  t.same(summary.runs.map((r) => r.status), ['complete', 'complete']);
  for (const run of summary.runs) t.ok(samplesOf(o.outDir, run.samplesFile).every((s) => s.level.startsWith('proc-')), 'read through /proc');
  t.equal(openFds(), before, 'every descriptor the runs opened is closed');
});
