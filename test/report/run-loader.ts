/**
 * The report's reader on real samples (the C workload profiled with the agent under glibc): a
 * compare run directory and a profile file load with what they hold; what a killed run leaves is
 * drawn up to its last whole line; every bad input is an AllocscopeError with a code.
 */
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPARE_SUMMARY_FILE, type CompareSummary } from '../../lib/compare/summary';
import { loadReportInput, MAX_SAMPLES_FILE_BYTES, readSamplesFile, VERDICT_WINDOW_SAMPLES } from '../../lib/report/run-loader';
import type { Snapshot } from '../../lib/snapshot';
import { profileWorkload, STEP, variantRun } from '../helpers/report-runs';

const dir = mkdtempSync(join(tmpdir(), 'allocscope-report-loader-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let snapshots: Snapshot[] = [];
t.before(async () => {
  snapshots = await profileWorkload('glibc', join(dir, 'real.ndjson'), 12, 60);
});

const lines = (list: readonly Snapshot[]) => list.map((s) => `${JSON.stringify(s)}\n`).join('');
let serial = 0;
function file(text: string, name = `f${serial++}.ndjson`): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A run directory holding `files` and a summary of `runs` (each may be edited first). */
function runDir(files: Record<string, string>, edit: (summary: CompareSummary) => void = () => {}): string {
  const path = join(dir, `run${serial++}`);
  mkdirSync(path);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(path, name), text);
  const summary: CompareSummary = {
    version: 1,
    command: ['server'],
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:01:00.000Z',
    requestsPlanned: 12 * STEP,
    step: STEP,
    concurrency: 1,
    load: 'builtin',
    repeatCount: 1,
    runs: [variantRun('glibc', 'glibc', 'glibc.ndjson', snapshots)],
    ranking: ['glibc'],
  };
  edit(summary);
  writeFileSync(join(path, COMPARE_SUMMARY_FILE), JSON.stringify(summary));
  return path;
}

t.test('a profile file: one run, x in seconds from the first sample, diagnose() verdict', async (t) => {
  const input = loadReportInput(join(dir, 'real.ndjson'));
  t.match(input, { kind: 'profile', xAxis: 'seconds', compare: null });
  t.equal(input.runs.length, 1);
  const [run] = input.runs;
  t.equal(run.status, 'profile');
  t.equal(run.label, `pid ${snapshots[0].pid} (glibc)`);
  t.equal(run.snapshots.length, 12);
  t.equal(run.x[0], 0);
  t.ok(run.x.every((x, i) => i === 0 || x > run.x[i - 1]), 'seconds rise');
  t.equal(run.x[11], (snapshots[11].monotonicNs - snapshots[0].monotonicNs) / 1e9);
  t.equal(run.verdictKind, 'insufficient-data');
  t.equal(run.verdict?.window.samples, 12);
  t.same(run.notes, []);
});

t.test('a killed profiler: the cut last line is left out and noted; blank lines are skipped', async (t) => {
  const whole = JSON.stringify(snapshots[5]);
  const path = file(`${lines(snapshots.slice(0, 5))}\n\n${whole.slice(0, 100)}`);
  t.same(readSamplesFile(path), { snapshots: snapshots.slice(0, 5), truncatedLastLine: true });
  const input = loadReportInput(path);
  t.equal(input.runs[0].snapshots.length, 5);
  t.match(input.runs[0].notes, [/cut off/]);
  t.same(readSamplesFile(file(lines(snapshots.slice(0, 3)))).truncatedLastLine, false);
});

t.test('bad inputs: EINVAL with the line or file named', async (t) => {
  t.throws(() => loadReportInput(join(dir, 'no-such.ndjson')), { code: 'EINVAL' }, 'missing path');
  t.throws(() => loadReportInput(''), { code: 'EINVAL' }, 'empty path');
  t.throws(() => loadReportInput(file('')), { code: 'EINVAL' }, 'empty file');
  t.throws(() => loadReportInput(file('\n \n')), { code: 'EINVAL' }, 'blank lines only');
  t.throws(() => loadReportInput(file(`${lines(snapshots.slice(0, 2))}{"torn\n${lines(snapshots.slice(2, 4))}`)), { code: 'EINVAL', details: { line: 3 } }, 'a bad line before the last');
  t.throws(() => loadReportInput(file(`${lines(snapshots.slice(0, 2))}{"schema":2}\n`)), { code: 'EINVAL', details: { line: 3 } }, 'JSON that is not a snapshot, even last');
  t.throws(() => loadReportInput(file(`${lines(snapshots.slice(0, 2))}[1,2]\n`)), { code: 'EINVAL' });
  t.throws(() => loadReportInput(file('time,rss\n1,2\n', 'run.csv')), { code: 'EINVAL' }, 'CSV is refused');
  t.throws(() => readSamplesFile(dir), { code: 'EINVAL' }, 'a directory is not a samples file');
  t.throws(() => loadReportInput(join(dir, 'empty-dir-is-not-a-run')), { code: 'EINVAL' });
  mkdirSync(join(dir, 'not-a-run'));
  t.throws(() => loadReportInput(join(dir, 'not-a-run')), { code: 'EINVAL' }, 'a directory without summary.json');
  // A sparse file: the size limit is checked before anything is read.
  const huge = file('');
  truncateSync(huge, MAX_SAMPLES_FILE_BYTES + 1);
  t.throws(() => loadReportInput(huge), { code: 'EINVAL', details: { size: MAX_SAMPLES_FILE_BYTES + 1 } }, 'over the size limit');
});

t.test('a file mixing two processes still loads; the verdict says why there is none', async (t) => {
  const other = snapshots.slice(6).map((s) => ({ ...s, pid: s.pid + 1 }));
  const input = loadReportInput(file(lines([...snapshots.slice(0, 6), ...other])));
  t.equal(input.runs[0].verdict, null);
  t.equal(input.runs[0].verdictKind, null);
  t.match(input.runs[0].notes, [/^no verdict: /]);
  t.match(input.runs[0].label, /^pid \d+\+\d+ /);
});

t.test('a compare run directory: statuses, requests as x, notes for what a stop leaves', async (t) => {
  const cut = JSON.stringify(snapshots[8]).slice(0, 50);
  const path = runDir({ 'glibc.ndjson': lines(snapshots), 'arena2.ndjson': `${lines(snapshots.slice(0, 8))}${cut}` }, (summary) => {
    summary.runs.push(
      { ...variantRun('glibc:MALLOC_ARENA_MAX=2', 'glibc', 'arena2.ndjson', snapshots.slice(0, 8), 'interrupted'), verdict: null, verdictSummary: null },
      { ...variantRun('tcmalloc', 'tcmalloc', null, [], 'failed'), error: { code: 'ESERVER', message: 'crashed' } },
      { ...variantRun('jemalloc', 'jemalloc', 'gone.ndjson', [], 'failed') },
    );
  });
  const input = loadReportInput(path);
  t.match(input, { kind: 'compare', xAxis: 'requests', source: path });
  t.same(
    input.runs.map((run) => [run.label, run.status, run.snapshots.length]),
    [
      ['glibc', 'complete', 12],
      ['glibc:MALLOC_ARENA_MAX=2', 'interrupted', 8],
      ['tcmalloc', 'failed', 0],
      ['jemalloc', 'failed', 0],
    ],
  );
  const [glibc, arena2, tcmalloc, jemalloc] = input.runs;
  t.same(glibc.x, snapshots.map((_, i) => (i + 1) * STEP));
  t.equal(glibc.verdict, null, "compare's own verdict is used as it is");
  t.equal(glibc.verdictKind, input.compare?.runs[0].verdict);
  t.match(arena2.notes, [/cut off/]);
  t.equal(arena2.verdictKind, 'insufficient-data', 'a run compare left without a verdict is judged here');
  t.not(arena2.verdict, null);
  t.same(tcmalloc.error, { code: 'ESERVER', message: 'crashed' });
  t.same(tcmalloc.notes, []);
  t.match(jemalloc.notes, [/could not be read: .*does not exist/], 'a missing samples file is noted, the other runs still load');
});

t.test('a run directory read defensively', async (t) => {
  const mismatched = loadReportInput(runDir({ 'glibc.ndjson': lines(snapshots) }, (s) => {
    s.runs[0].requestsAtSample = s.runs[0].requestsAtSample.slice(0, 10);
  }));
  t.equal(mismatched.runs[0].snapshots.length, 10, 'samples beyond the request counts are not drawn');
  t.match(mismatched.runs[0].notes, [/12 samples but 10 request counts/]);

  const outside = loadReportInput(runDir({}, (s) => {
    s.runs[0].samplesFile = '../real.ndjson';
  }));
  t.equal(outside.runs[0].snapshots.length, 0);
  t.match(outside.runs[0].notes, [/outside the run directory/]);

  const repeated = loadReportInput(runDir({ 'glibc.ndjson': lines(snapshots) }, (s) => {
    s.runs.push({ ...s.runs[0], repeat: 1 });
    s.repeatCount = 2;
  }));
  t.same(repeated.runs.map((r) => r.label), ['glibc #1', 'glibc #2']);

  t.throws(() => loadReportInput(runDir({ 'glibc.ndjson': `${lines(snapshots.slice(0, 2))}oops\n${lines(snapshots.slice(2))}` })), { code: 'EINVAL', details: { line: 3 } }, 'a bad line inside a run file');
});

t.test('a bad summary.json: EINVAL', async (t) => {
  const bad = (text: string) => {
    const path = join(dir, `bad${serial++}`);
    mkdirSync(path);
    writeFileSync(join(path, COMPARE_SUMMARY_FILE), text);
    return path;
  };
  t.throws(() => loadReportInput(bad('{"version":1,')), { code: 'EINVAL' }, 'not JSON');
  t.throws(() => loadReportInput(bad('[]')), { code: 'EINVAL' }, 'not an object');
  t.throws(() => loadReportInput(bad('{"version":2,"runs":[]}')), { code: 'EINVAL', details: { version: 2 } }, 'another version');
  t.throws(() => loadReportInput(bad('{"version":1}')), { code: 'EINVAL' }, 'no runs');
  const run = variantRun('glibc', 'glibc', null, []);
  for (const [what, edit] of [
    ['a run that is not an object', () => 7],
    ['no label', () => ({ ...run, label: 3 })],
    ['an unknown status', () => ({ ...run, status: 'done' })],
    ['a samplesFile that is not a name', () => ({ ...run, samplesFile: 5 })],
    ['request counts that are not numbers', () => ({ ...run, requestsAtSample: ['1'] })],
  ] as const) {
    t.throws(() => loadReportInput(bad(JSON.stringify({ version: 1, runs: [edit()] }))), { code: 'EINVAL', details: { index: 0 } }, what);
  }
  const empty = loadReportInput(bad(JSON.stringify({ version: 1, runs: [] })));
  t.same(empty.runs, [], 'a summary written before the first run ended has no runs, and still loads');
});

t.test('the verdict judges the latest window only; the charts get every sample', async (t) => {
  const count = VERDICT_WINDOW_SAMPLES + 100;
  const long = Array.from({ length: count }, (_, i) => ({ ...snapshots[i % 12], monotonicNs: snapshots[0].monotonicNs + i * 1e9, time: snapshots[0].time + i * 1000 }));
  const input = loadReportInput(file(lines(long)));
  t.equal(input.runs[0].snapshots.length, count);
  t.equal(input.runs[0].verdict?.window.samples, VERDICT_WINDOW_SAMPLES);
  t.equal(input.runs[0].verdict?.window.lastMonotonicNs, long[count - 1].monotonicNs);
});
