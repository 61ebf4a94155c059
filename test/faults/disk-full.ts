/**
 * Fault: the disk holding --out fills up mid-run (a real 64 KiB tmpfs, root only). profile-pid
 * and run must end with a clear error (EIO, "the file system is full"), no stack trace, the
 * summary of every sample taken on stdout, and a file of whole NDJSON lines.
 */
import t from 'tap';
import { closeSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { checkNdjson, MAIN, PROFILE_PID, runsFree, STACK_TRACE, startCli } from '../helpers/faults';
import { mountTmpfs, type Tmpfs } from '../helpers/tmpfs';
import { startWorkload, WORKLOAD, type Workload } from '../helpers/workload';

const fs = mountTmpfs(64 * 1024);
const running: Workload[] = [];
t.teardown(() => {
  running.forEach((w) => w.stop());
  if (typeof fs !== 'string') fs.remove();
});

/** Empties the tmpfs, then fills all but about `free` bytes of it (0: completely, to ENOSPC). */
function fillTo(tmpfs: Tmpfs, free: number): void {
  for (const name of readdirSync(tmpfs.dir)) rmSync(join(tmpfs.dir, name));
  if (free > 0) return writeFileSync(join(tmpfs.dir, 'filler'), Buffer.alloc(64 * 1024 - free));
  const fd = openSync(join(tmpfs.dir, 'filler'), 'w');
  try {
    for (let i = 0; i < 1000; i++) writeSync(fd, Buffer.alloc(4096));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

t.test('profile-pid --out on a full disk: EIO, exit 1, summary of the samples in memory, whole lines', { skip: typeof fs === 'string' ? fs : false }, async (t) => {
  const tmpfs = fs as Tmpfs;
  fillTo(tmpfs, 24 * 1024);
  const w = await startWorkload(['leak', '4096', '10', '0']);
  running.push(w);
  const out = join(tmpfs.dir, 'run.ndjson');
  const cli = startCli([PROFILE_PID, String(w.pid), '--interval', '10ms', '--samples', '100000', '--out', out], 45_000);
  const { code, signal } = await cli.exited;
  t.equal(signal, null, 'not killed by the test\'s time bound');
  t.equal(code, 1, 'exit 1: the profile could not be saved');
  t.match(cli.stderr(), /writing --out .*run\.ndjson failed: the file system is full \(ENOSPC\)\..*\[EIO\]/s);
  t.notMatch(cli.stderr(), STACK_TRACE, 'no stack trace');
  const file = checkNdjson(out);
  t.same(file.broken, [], 'every line parses');
  t.equal(file.endsWhole, true, 'no partial last line');
  t.ok(file.samples.length > 0, `${file.samples.length} samples in the file`);
  const summary = cli.stdout();
  t.match(summary, /ended because writing .*run\.ndjson failed; it holds whole lines only/);
  const taken = Number(/: (\d+) samples at level/.exec(summary)?.[1]);
  t.equal(taken, file.samples.length + 1, 'the summary counts the sample that did not fit too');
  t.match(summary, /verdict: /, 'a verdict from the samples in memory');
  t.equal(runsFree(w.pid), true, 'the target is untouched');
});

t.test('profile-pid --json on a full disk: the result says write-failed and why', { skip: typeof fs === 'string' ? fs : false }, async (t) => {
  const tmpfs = fs as Tmpfs;
  fillTo(tmpfs, 0); // nothing left: the first sample fails
  const w = await startWorkload(['steady', '10', '10', '0'], { agent: false });
  running.push(w);
  const out = join(tmpfs.dir, 'json.ndjson');
  const cli = startCli([PROFILE_PID, String(w.pid), '--interval', '10ms', '--samples', '50', '--out', out, '--json'], 30_000);
  t.equal((await cli.exited).code, 1);
  const result = JSON.parse(cli.stdout());
  t.equal(result.endedBy, 'write-failed');
  t.equal(result.samples, 1);
  t.match(result.writeError, /file system is full/);
  t.ok(result.last !== null, 'the sample that did not fit is in the result');
  t.same(checkNdjson(out).samples, [], 'an empty file, not half a line');
});

t.test('allocscope run --out on a full disk: EIO, exit 1, and the command it started is stopped', { skip: typeof fs === 'string' ? fs : false }, async (t) => {
  const tmpfs = fs as Tmpfs;
  fillTo(tmpfs, 24 * 1024);
  const out = join(tmpfs.dir, 'run-cmd.ndjson');
  const cli = startCli([MAIN, 'run', '--interval', '10ms', '--out', out, '--quiet', '--', WORKLOAD, 'leak', '4096', '10', '0'], 30_000);
  const { code, signal } = await cli.exited;
  t.equal(signal, null);
  t.equal(code, 1);
  t.match(cli.stderr(), /allocscope run: writing --out .* failed: the file system is full/);
  t.notMatch(cli.stderr(), STACK_TRACE);
  t.match(cli.stdout(), /ended because writing/);
  const file = checkNdjson(out);
  t.ok(file.broken.length === 0 && file.endsWhole && file.samples.length > 0, `${file.samples.length} whole lines`);
  const pid = Number(/profile of pid (\d+)/.exec(cli.stdout())?.[1]);
  t.ok(pid > 0);
  t.equal(runsFree(pid) === true, false, 'the command did not outlive run');
});
