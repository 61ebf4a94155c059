/**
 * `allocscope report` through main() and the built bin: a real run directory (the C workload
 * profiled with the agent) and a profile file become HTML pages; every mistake exits non-zero
 * with a code or a usage line.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../lib/cli/main';
import { defaultReportPath } from '../../lib/cli/report';
import { makeCompareRunDir } from '../helpers/report-runs';

const dir = mkdtempSync(join(tmpdir(), 'allocscope-cli-report-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const bin = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const runDir = join(dir, 'run');
t.before(() => makeCompareRunDir(runDir));

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['report', ...argv], (text) => out.push(text), (text) => err.push(text));
  return { code, out: out.join('\n'), err: err.join('\n') };
}

t.test('a run directory with -o, and without (report.html inside it)', async (t) => {
  const out = join(dir, 'compare.html');
  const result = await cli(runDir, '-o', out);
  t.equal(result.code, 0, result.err);
  t.match(result.out, new RegExp(`^report written to ${out} \\(\\d+\\.\\d KiB, 1[01] charts, 5 runs\\)$`));
  t.match(readFileSync(out, 'utf8'), /^<!doctype html>/);
  t.equal((await cli(runDir)).code, 0);
  t.ok(existsSync(join(runDir, 'report.html')));
  const quiet = await cli(runDir, '--out', out, '--quiet');
  t.same([quiet.code, quiet.out], [0, '']);
});

t.test('a profile file: FILE.html beside it by default', async (t) => {
  const result = await cli(join(runDir, 'glibc.ndjson'));
  t.equal(result.code, 0, result.err);
  t.match(result.out, /5 charts, 1 run\)$/);
  t.ok(statSync(join(runDir, 'glibc.html')).size > 50_000);
  t.equal(defaultReportPath('a/b.jsonl', false), 'a/b.html');
  t.equal(defaultReportPath('samples', false), 'samples.html');
  t.equal(defaultReportPath('runs/x', true), join('runs/x', 'report.html'));
});

t.test('mistakes: usage errors exit 2, bad inputs exit 1 with their code', async (t) => {
  for (const argv of [[], [runDir, runDir], [runDir, '--what'], [runDir, '-o']]) {
    const result = await cli(...argv);
    t.equal(result.code, 2, `report ${argv.join(' ')}`);
    t.match(result.err, /^allocscope report: /);
  }
  const cases: Array<[string, string[]]> = [
    ['a missing input', [join(dir, 'nope.ndjson')]],
    ['a directory that is not a run', [dir]],
    ['an output path that is a directory', [runDir, '-o', dir]],
  ];
  for (const [what, argv] of cases) {
    const result = await cli(...argv);
    t.equal(result.code, 1, what);
    t.match(result.err, /\[EINVAL\]$/, what);
  }
});

t.test('the built bin exits non-zero with the error on stderr', async (t) => {
  const result = spawnSync(process.execPath, [bin, 'report', join(dir, 'missing-run')], { encoding: 'utf8', timeout: 30_000 });
  t.equal(result.status, 1);
  t.match(result.stderr, /does not exist.*\[EINVAL\]/);
  const help = spawnSync(process.execPath, [bin, 'help'], { encoding: 'utf8', timeout: 30_000 });
  t.match(help.stdout, /report RUN_DIR\|FILE\.ndjson \[-o report\.html\]/);
});
