/**
 * The libFuzzer targets of native/fuzz/ for a bounded time each (ALLOCSCOPE_FUZZ_SECONDS, default
 * 30), through scripts/fuzz: zero crashes, and the figures in the TAP output. CI runs this file
 * (.ci/run); `npm run fuzz -- --seconds N` is the same without tap.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const SECONDS = Number(process.env.ALLOCSCOPE_FUZZ_SECONDS ?? 30);
const TARGETS = ['wire_request', 'proc_text', 'mallctl', 'inject_caves', 'glibc_census'];
const haveClang = spawnSync('clang', ['--version']).status === 0;

for (const target of TARGETS) {
  t.test(`fuzz ${target} for ${SECONDS} s: zero crashes`, { skip: haveClang ? false : 'clang is not installed (apt-get install clang)', timeout: (SECONDS + 120) * 1000 }, (t) => {
    const run = spawnSync(join(__dirname, '..', 'fuzz'), ['--seconds', String(SECONDS), '--target', target], { encoding: 'utf8' });
    const line = run.stdout.split('\n').find((l) => l.startsWith(`fuzz ${target}:`)) ?? '';
    t.comment(line);
    if (run.status !== 0) t.comment(`${run.stdout}\n${run.stderr}`);
    t.equal(run.status, 0, 'scripts/fuzz exits 0');
    const figures = /runs (\d+), execs\/s (\d+), coverage (\d+) of \d+ edges.*crashes (\d+)/.exec(line);
    t.ok(figures, 'the run reports its figures');
    if (figures !== null) {
      t.ok(Number(figures[1]) > 1000, `${figures[1]} inputs ran`);
      t.ok(Number(figures[3]) > 0, `${figures[3]} edges covered`);
      t.equal(Number(figures[4]), 0, 'no crash');
    }
    t.end();
  });
}
