import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CSV_COLUMNS, formatFor, SampleWriter } from '../../lib/report/sample-writer';
import { syntheticSnapshot } from '../helpers/synthetic';
import { mountTmpfs } from '../helpers/tmpfs';
import type { Snapshot } from '../../lib/snapshot';

const dir = mkdtempSync(join(tmpdir(), 'allocscope-writer-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const sample = (i: number): Snapshot => syntheticSnapshot({ seconds: i, rss: 1_000_000 + i, allocated: 500_000 + i });

t.test('the format follows the file name', async (t) => {
  t.equal(formatFor('a.ndjson'), 'ndjson');
  t.equal(formatFor('a.jsonl'), 'ndjson');
  t.equal(formatFor('a.csv'), 'csv');
  t.throws(() => formatFor('a.txt'), { code: 'EINVAL' });
});

t.test('NDJSON: one whole line per sample; an existing file is replaced', async (t) => {
  const path = join(dir, 'run.ndjson');
  writeFileSync(path, 'an older run that is longer than the new one\n'.repeat(1000));
  const writer = new SampleWriter(path);
  for (let i = 0; i < 3; i++) writer.write(sample(i));
  writer.close();
  writer.close();
  t.equal(writer.written, 3);
  const lines = readFileSync(path, 'utf8').split('\n');
  t.equal(lines.pop(), '', 'ends with a newline');
  t.same(lines.map((l) => (JSON.parse(l) as Snapshot).processBytes.rss), [1_000_000, 1_000_001, 1_000_002], 'nothing of the older file is left');
});

t.test('CSV: a header, one row per sample, text with commas or quotes quoted', async (t) => {
  const path = join(dir, 'run.csv');
  const writer = new SampleWriter(path);
  const odd = sample(0);
  (odd as { source: string }).source = 'a,"b"';
  writer.write(odd);
  writer.close();
  const [header, row] = readFileSync(path, 'utf8').trim().split('\n');
  t.equal(header, CSV_COLUMNS.join(','));
  t.equal(row.split(',').length > CSV_COLUMNS.length - 1, true);
  t.match(row, /,"a,""b""",/);
});

t.test('paths that cannot be written: a directory, a missing directory, no permission', async (t) => {
  const asDir = join(dir, 'isdir.ndjson');
  mkdirSync(asDir);
  t.throws(() => new SampleWriter(asDir), { code: 'EINVAL', details: { errno: 'EISDIR' }, message: /is a directory/ });
  t.throws(() => new SampleWriter(join(dir, 'no', 'such', 'run.ndjson')), { code: 'EINVAL', details: { errno: 'ENOENT' }, message: /does not exist/ });
  t.throws(() => new SampleWriter('/proc/self/run.ndjson'), { code: /EACCES|EINVAL/ }, 'procfs refuses new files');
});

t.test('a device that is always full (/dev/full): EIO with the errno, nothing half-written, later writes are no-ops', async (t) => {
  const path = join(dir, 'full.ndjson');
  symlinkSync('/dev/full', path);
  const writer = new SampleWriter(path);
  t.throws(() => writer.write(sample(0)), { code: 'EIO', details: { errno: 'ENOSPC', written: 0 }, message: /file system is full/ });
  t.equal(writer.written, 0);
  t.doesNotThrow(() => writer.write(sample(1)), 'a writer that failed stays closed');
  const csv = join(dir, 'full.csv');
  symlinkSync('/dev/full', csv);
  t.throws(() => new SampleWriter(csv), { code: 'EIO' }, 'the CSV header is the first write');
});

const fs = mountTmpfs(16 * 1024);
t.teardown(() => typeof fs !== 'string' && fs.remove());
t.test('a real full disk (a 16 KiB tmpfs): the file is cut back to its last whole line', { skip: typeof fs === 'string' ? fs : false }, async (t) => {
  if (typeof fs === 'string') return;
  const path = join(fs.dir, 'run.ndjson');
  const writer = new SampleWriter(path);
  let error: unknown = null;
  for (let i = 0; i < 1000 && error === null; i++) {
    try {
      writer.write(sample(i));
    } catch (e) {
      error = e;
    }
  }
  t.match(error, { code: 'EIO', details: { errno: 'ENOSPC' } });
  const text = readFileSync(path, 'utf8');
  t.ok(text.endsWith('\n'), 'the last line is whole');
  const lines = text.trim().split('\n');
  t.equal(lines.length, writer.written, `${writer.written} samples, each a whole line`);
  t.ok(lines.every((l) => typeof JSON.parse(l) === 'object'));
  t.ok(writer.written > 0 && text.length < 16 * 1024);
});

t.test('a FIFO named run.ndjson: samples stream through it', async (t) => {
  const { spawnSync, spawn } = await import('node:child_process');
  const fifo = join(dir, 'stream.ndjson');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  reader.stdout.on('data', (d: Buffer) => (text += d.toString()));
  const writer = new SampleWriter(fifo);
  writer.write(sample(0));
  writer.write(sample(1));
  writer.close();
  await new Promise((resolve) => reader.once('close', resolve));
  t.equal(text.trim().split('\n').length, 2);
});
