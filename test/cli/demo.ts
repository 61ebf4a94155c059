import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocatorInstalled } from '../../lib/allocators/libraries';
import { DEMO_SECONDS, DEMO_VARIANTS, demoCommand, demoServerPath } from '../../lib/cli/demo';
import { readCompareSummary } from '../../lib/compare/summary';
import { parseVariants } from '../../lib/compare/variants';

const bin = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const root = mkdtempSync(join(tmpdir(), 'allocscope-demo-test-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

t.test('the example server is built with the package, and the demo fits in two minutes', async (t) => {
  t.ok(existsSync(demoServerPath()), demoServerPath());
  const variants = parseVariants(DEMO_VARIANTS);
  t.equal(variants[0].label, 'glibc', 'plain glibc first: the baseline');
  t.ok(variants.some((v) => v.env.MALLOC_ARENA_MAX === '2'), 'tuned glibc runs with no extra library');
  t.ok(variants.length * DEMO_SECONDS <= 110, 'five runs of load, with starts and stops, under two minutes');
});

t.test('npm run demo (the compiled CLI), shortened: every installed variant runs, the rest say which package adds them', async (t) => {
  const out = join(root, 'text');
  const result = spawnSync(process.execPath, [bin, 'demo', '--seconds', '1', '--out', out], { encoding: 'utf8', timeout: 50_000 });
  t.equal(result.status, 0, result.stderr);
  t.match(result.stderr, /the example server/);
  t.match(result.stdout, /variant\s+rank\s+RSS start\s+RSS end/);
  t.match(result.stdout, /RSS vs requests/);
  t.match(result.stdout, `Run directory: ${out}`);
  t.match(result.stdout, `Report: ${join(out, 'report.html')}`);
  t.ok(existsSync(join(out, 'report.html')), 'the HTML report is written into the run directory');
  const summary = readCompareSummary(out);
  for (const run of summary.runs) {
    if (allocatorInstalled(run.allocator)) {
      t.equal(run.status, 'complete', run.label);
      t.ok(run.requestsCompleted > 100, `${run.label}: ${run.requestsCompleted} requests in 1 s`);
      t.ok(run.loadMs >= 900 && run.loadMs < 5000, `${run.label}: bounded by time (${run.loadMs.toFixed(0)} ms)`);
    } else {
      t.equal(run.status, 'skipped');
      t.match(result.stdout, `not run: ${run.label}`);
      t.match(run.error?.message, /apt-get install /);
    }
  }
  t.equal(summary.runs.length, parseVariants(DEMO_VARIANTS).length);
});

t.test('--json, and its flags checked', async (t) => {
  const lines: string[] = [];
  const code = await demoCommand(['--seconds', '1', '--json', '--out', join(root, 'json')], (l) => lines.push(l), (l) => lines.push(`ERR ${l}`));
  t.equal(code, 0);
  t.equal(lines.length, 1, 'only the JSON on stdout, no progress');
  const summary = JSON.parse(lines[0]) as { dir: string; runs: Array<{ status: string }> };
  t.equal(summary.dir, join(root, 'json'));
  t.ok(summary.runs.some((r) => r.status === 'complete'));
  const text: string[] = [];
  const progress: string[] = [];
  t.equal(await demoCommand(['--seconds', '1', '--quiet', '--out', join(root, 'in-process')], (l) => text.push(l), (l) => progress.push(l)), 0);
  t.same(progress, [], '--quiet: no progress');
  t.match(text.join('\n'), `Report: ${join(root, 'in-process', 'report.html')}`);
  await t.rejects(demoCommand(['--seconds', '0'], () => {}), { name: 'UsageError' });
  await t.rejects(demoCommand(['--what'], () => {}), { name: 'UsageError' });
});
