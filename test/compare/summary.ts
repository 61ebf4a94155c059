import t from 'tap';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPARE_SUMMARY_FILE, COMPARE_SUMMARY_VERSION, type CompareSummary, readCompareSummary, writeCompareSummary } from '../../lib/compare/summary';

const dir = mkdtempSync(join(tmpdir(), 'allocscope-summary-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const summary: CompareSummary = {
  version: COMPARE_SUMMARY_VERSION,
  command: ['./server', '--port', '8080'],
  startedAt: '2026-11-27T00:00:00.000Z',
  finishedAt: null,
  requestsPlanned: 1000,
  step: 100,
  concurrency: 4,
  load: 'builtin',
  repeatCount: 1,
  runs: [],
  ranking: [],
};

t.test('written atomically and read back', async (t) => {
  writeCompareSummary(dir, summary);
  writeCompareSummary(dir, { ...summary, finishedAt: '2026-11-27T00:01:00.000Z' });
  t.same(readdirSync(dir), [COMPARE_SUMMARY_FILE], 'no temporary file left behind');
  t.equal(readCompareSummary(dir).finishedAt, '2026-11-27T00:01:00.000Z');
});

t.test('anything else is EINVAL', async (t) => {
  const other = mkdtempSync(join(dir, 'x'));
  t.throws(() => readCompareSummary(other), { code: 'EINVAL' }, 'missing');
  writeFileSync(join(other, COMPARE_SUMMARY_FILE), '{not json');
  t.throws(() => readCompareSummary(other), { code: 'EINVAL' }, 'not JSON');
  writeFileSync(join(other, COMPARE_SUMMARY_FILE), JSON.stringify({ ...summary, version: 99 }));
  t.throws(() => readCompareSummary(other), { code: 'EINVAL' }, 'another version');
  writeFileSync(join(other, COMPARE_SUMMARY_FILE), 'null');
  t.throws(() => readCompareSummary(other), { code: 'EINVAL' }, 'null');
});
