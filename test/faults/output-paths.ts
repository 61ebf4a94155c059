/**
 * Faults of where output goes: --out naming a file that exists (replaced, as a shell's > would),
 * a directory (a clear EINVAL, exit 1), or stdout a pipe whose reader leaves early
 * (`profile-pid PID | head -1`: a quiet end, no EPIPE stack trace, the target unaffected).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAgentSnapshot } from '../../lib/targets/agent';
import { checkNdjson, PROFILE_PID, runsFree, STACK_TRACE, startCli } from '../helpers/faults';
import { startWorkload, type Workload } from '../helpers/workload';

const dir = mkdtempSync(join(tmpdir(), 'allocscope-outpaths-'));
const running: Workload[] = [];
t.teardown(() => {
  running.forEach((w) => w.stop());
  rmSync(dir, { recursive: true, force: true });
});

t.test('--out names a file that exists: it is replaced by this run\'s samples', async (t) => {
  const w = await startWorkload(['steady', '10', '10', '0']);
  running.push(w);
  const out = join(dir, 'exists.ndjson');
  writeFileSync(out, `${JSON.stringify({ older: true })}\n`.repeat(5000));
  const cli = startCli([PROFILE_PID, String(w.pid), '--interval', '20ms', '--samples', '3', '--out', out, '--quiet'], 30_000);
  t.equal((await cli.exited).code, 0, cli.stderr());
  const file = checkNdjson(out);
  t.equal(file.samples.length, 3, 'three samples, nothing of the older file');
  t.ok(file.samples.every((s) => s.pid === w.pid));
});

t.test('--out names a directory: a clear error, exit 1, no stack trace, the directory untouched', async (t) => {
  const w = await startWorkload(['steady', '10', '10', '0'], { agent: false });
  running.push(w);
  const asDir = join(dir, 'samples.ndjson');
  mkdirSync(asDir);
  const cli = startCli([PROFILE_PID, String(w.pid), '--samples', '2', '--out', asDir], 30_000);
  t.equal((await cli.exited).code, 1);
  t.match(cli.stderr(), /cannot write --out .*samples\.ndjson: it is a directory \(EISDIR\)\. Choose a writable file path\. \[EINVAL\]/);
  t.notMatch(cli.stderr(), STACK_TRACE);
  const plain = startCli([PROFILE_PID, String(w.pid), '--samples', '2', '--out', `${dir}/`], 30_000);
  t.equal((await plain.exited).code, 1);
  t.match(plain.stderr(), /--out must name a \.ndjson \(or \.jsonl\) or \.csv file.*\[EINVAL\]/, 'a path ending in / is not a sample file');
  t.equal(runsFree(w.pid), true);
});

/** `bash -c 'node profile-pid ... | head -1'`: the exit status of profile-pid, head's line, stderr. */
function throughHead(args: string[]): Promise<{ status: number; line: string; stderr: string; ms: number }> {
  const quoted = [process.execPath, PROFILE_PID, ...args].map((a) => `'${a}'`).join(' ');
  const started = Date.now();
  const shell = spawn('bash', ['-c', `${quoted} | head -1; exit "\${PIPESTATUS[0]}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  shell.stdout.on('data', (d: Buffer) => (out += d.toString()));
  shell.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => shell.kill('SIGKILL'), 40_000);
  return new Promise((resolve) =>
    shell.once('close', (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, line: out.trim(), stderr: err, ms: Date.now() - started });
    }),
  );
}

t.test('stdout is a pipe closed early (| head -1): profile-pid ends quietly, the target is unaffected', async (t) => {
  const w = await startWorkload(['leak', '4096', '10', '0']);
  running.push(w);
  const out = join(dir, 'piped.ndjson');
  // 400 samples at 50 ms would take 20 s: ending long before says the closed pipe ended it.
  const live = await throughHead([String(w.pid), '--interval', '50ms', '--samples', '400', '--out', out]);
  t.match(live.line, /^\S+ rss=\d+ allocated=\d+ level=agent$/, 'head got its line');
  t.equal(live.status, 0, 'a quiet, normal end');
  t.notMatch(live.stderr, /EPIPE|Unhandled/);
  t.notMatch(live.stderr, STACK_TRACE);
  t.ok(live.ms < 15_000, `ended after ${live.ms} ms, not after 400 samples`);
  const file = checkNdjson(out);
  t.ok(file.broken.length === 0 && file.endsWhole && file.samples.length >= 1, `--out holds ${file.samples.length} whole samples`);

  const json = await throughHead([String(w.pid), '--interval', '20ms', '--samples', '3', '--json']);
  t.equal(json.line, '{', 'the JSON result starts');
  t.equal(json.status, 0);
  t.notMatch(json.stderr, STACK_TRACE);

  t.equal(runsFree(w.pid), true, 'the target runs on');
  const after = await readAgentSnapshot(w.pid);
  t.equal(after.level, 'agent', 'and its agent still answers');
});
