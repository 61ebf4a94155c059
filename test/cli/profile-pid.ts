import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import schema from '../../schema/snapshot.v1.json';
import { parseProfileArgs, profilePid, summaryText } from '../../lib/cli/profile-pid';
import { skipUnlessInstalled } from '../helpers/child';
import { ab, NGINX, nginxConfig, nginxSkip, startNginx } from '../helpers/nginx';
import { startWorkload, waitFor, type Workload } from '../helpers/workload';
import { agentSocketExists } from '../../lib/targets/agent';
import type { Snapshot } from '../../lib/snapshot';

const validate = new Ajv2020().compile(schema);
const bin = join(__dirname, '..', '..', 'scripts', 'profile-pid');
const dir = mkdtempSync(join(tmpdir(), 'allocscope-profile-'));
const running: Workload[] = [];
t.teardown(() => {
  running.forEach((w) => w.stop());
  rmSync(dir, { recursive: true, force: true });
});
const io = { out: () => {}, err: () => {}, tty: false };

t.test('flags', async (t) => {
  t.same(parseProfileArgs(['42']), { pid: 42, intervalMs: 1000, durationMs: null, samples: null, out: null, json: false, children: false, quiet: false });
  t.equal(parseProfileArgs(['42', '--interval', '250ms', '--duration', '10m']).durationMs, 600_000);
  for (const bad of [[], ['x'], ['0'], ['1', '2'], ['1', '--duration', '1s', '--samples', '3'], ['1', '--interval', 'fast'], ['1', '--what']]) {
    t.throws(() => parseProfileArgs(bad), { name: 'UsageError' }, bad.join(' '));
  }
});

t.test('agent level: every sample streamed to NDJSON, schema-valid, with allocator figures', { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
  const w = await startWorkload(['leak', '65536', '10', '0'], { allocator: 'jemalloc' });
  running.push(w);
  t.ok(await waitFor(() => agentSocketExists(w.pid), 2000));
  const out = join(dir, 'agent.ndjson');
  const result = await profilePid({ pid: w.pid, intervalMs: 50, durationMs: null, samples: 12, out, json: false, children: false, quiet: false }, io);
  t.equal(result.samples, 12);
  t.equal(result.endedBy, 'samples');
  t.equal(result.level, 'agent');
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Snapshot);
  t.equal(lines.length, 12);
  t.ok(lines.every((s) => validate(s) && s.allocator.name === 'jemalloc' && (s.allocatorBytes.allocated ?? 0) > 0));
  t.ok((lines[11].allocatorBytes.allocated ?? 0) > (lines[0].allocatorBytes.allocated ?? 0), 'the leak shows in live bytes');
  t.match(summaryText(result), /12 samples at level agent/);
});

t.test('the target exits mid-run: the file holds every sample taken, and the summary says so', async (t) => {
  // 40 steps of 100 ms: the workload exits after ~4 s (time for the CLI to start even on a loaded
  // machine), long before the 30 s duration.
  const w = await startWorkload(['leak', '4096', '100', '40'], { agent: false });
  running.push(w);
  const out = join(dir, 'exit.csv');
  const cli = spawnSync(process.execPath, [bin, String(w.pid), '--interval', '50ms', '--duration', '30s', '--out', out, '--json'], { encoding: 'utf8', timeout: 40_000 });
  t.equal(cli.status, 0, cli.stderr);
  const result = JSON.parse(cli.stdout);
  t.equal(result.endedBy, 'target-exited');
  const rows = readFileSync(out, 'utf8').trim().split('\n');
  t.equal(rows.length - 1, result.samples, 'one CSV row per sample taken');
  t.ok(result.samples >= 3, `${result.samples} samples before the exit`);
  t.match(rows[0], /^time,monotonicNs,pid,source,level,allocator.name/);
});

t.test('exit codes: no such pid 3, bad flag 2; a procfs-level run says why it is not deeper', async (t) => {
  t.equal(spawnSync(process.execPath, [bin, '999999999'], { encoding: 'utf8' }).status, 3);
  t.equal(spawnSync(process.execPath, [bin, '1', '--bogus'], { encoding: 'utf8' }).status, 2);
  const w = await startWorkload(['steady', '10', '10', '0'], { agent: false });
  running.push(w);
  const asNobody = spawnSync(process.execPath, [bin, String(w.pid), '--samples', '2', '--interval', '50ms', '--json'], { encoding: 'utf8', uid: 65534, gid: 65534, timeout: 20_000 });
  t.equal(asNobody.status, 0, asNobody.stderr);
  const result = JSON.parse(asNobody.stdout);
  t.equal(result.level, 'proc-basic', 'another user reaches the basic level only');
  t.match(result.levelNote, /EACCES|permission|same uid|CAP_SYS_PTRACE/i, result.levelNote);
});

t.test('--children: a real nginx master and its workers, read as one tree', { skip: nginxSkip() }, async (t) => {
  const server = await startNginx({ ...process.env, LD_PRELOAD: '' }, 2);
  t.teardown(() => server.stop());
  const result = await profilePid({ pid: server.master, intervalMs: 50, durationMs: null, samples: 3, out: null, json: true, children: true, quiet: true }, io);
  t.equal(result.last?.raw.tree.processes, 3, 'master and two workers');
  t.equal(Object.keys(result.last?.raw.tree_rss ?? {}).length, 3);
  const sum = Object.values(result.last?.raw.tree_rss ?? {}).reduce((a, b) => a + b, 0);
  t.equal(result.last?.processBytes.rss, sum, 'RSS is the sum over the tree');
  // PSS per process in every sample, though smaps_rollup is read at most once per 10 s each:
  // the last sample reuses the figures of the first read (and says how old they are).
  t.same(Object.keys(result.last?.raw.tree_pss ?? {}).sort(), Object.keys(result.last?.raw.tree_rss ?? {}).sort(), 'PSS for every process');
  const pss = Object.values(result.last?.raw.tree_pss ?? {}).reduce((a, b) => a + b, 0);
  t.equal(result.last?.processBytes.pss, pss, 'PSS is the sum over the tree');
  t.ok(pss < sum, 'shared pages counted once in PSS');
  t.equal(result.last?.raw.tree.smapsReads, 0, 'no smaps_rollup read within the gate\'s interval');
  t.ok(Object.values(result.last?.raw.tree_pss_age_ms ?? {}).every((age) => age >= 50), 'the reused figures say their age');
  t.match(result.levelNote, /a tree of 3 processes/);
});

t.test('allocscope run: the command runs under the chosen allocator with the agent; signals pass through', { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
  const main = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
  const workload = join(__dirname, '..', '..', 'build', 'Release', 'heap_workload');
  const out = join(dir, 'run.ndjson');
  const run = spawnSync(process.execPath, [main, 'run', '--allocator', 'jemalloc', '--env', 'MALLOC_CONF=narenas:2', '--duration', '1s', '--interval', '100ms', '--out', out, '--quiet', '--', workload, 'leak', '65536', '10', '0'], { encoding: 'utf8', timeout: 30_000 });
  t.equal(run.status, 0, run.stderr);
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Snapshot);
  t.ok(lines.length >= 5, `${lines.length} samples`);
  t.ok(lines.every((s) => s.level === 'agent' && s.allocator.name === 'jemalloc'), 'allocator figures from inside the command');
  t.equal(spawnSync(process.execPath, [main, 'run', '--env', '1BAD=x', '--', workload], { encoding: 'utf8' }).status, 2, 'invalid env key');
  t.equal(spawnSync(process.execPath, [main, 'run', '--allocator', 'ptmalloc3', '--', workload], { encoding: 'utf8' }).status, 2);
  t.equal(spawnSync(process.execPath, [main, 'run', '--', '/no/such/program'], { encoding: 'utf8' }).status, 127);
  // SIGTERM to allocscope reaches the command (exit 128+15), and allocscope reports it.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [main, 'run', '--quiet', '--', workload, 'steady', '10', '50', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (d) => (text += d));
  await waitFor(() => text.includes('ready'), 5000);
  await new Promise((r) => setTimeout(r, 300));
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.equal(code, 143, 'the command ended by the forwarded SIGTERM');
  t.match(text, /the target exited/);
});

t.test('allocscope run starts a real nginx under jemalloc and the agent; its samples carry allocator stats from inside it', { skip: skipUnlessInstalled('jemalloc') || nginxSkip() }, async (t) => {
  const { spawn } = await import('node:child_process');
  const main = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
  const { dir: confDir, port, args } = await nginxConfig(1);
  t.teardown(() => rmSync(confDir, { recursive: true, force: true }));
  const out = join(dir, 'nginx.ndjson');
  const run = spawn(process.execPath, [main, 'run', '--allocator', 'jemalloc', '--duration', '3s', '--interval', '200ms', '--out', out, '--quiet', '--', NGINX, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => run.once('exit', (code) => resolve(code)));
  // Load it while it is profiled: the master's agent answers, the worker serves.
  await waitFor(() => {
    try {
      return readFileSync(out, 'utf8').length > 0;
    } catch {
      return false;
    }
  }, 10_000);
  const load = ab(port, 3000);
  t.equal(load.failed, 0, 'no failed requests');
  t.equal(await exited, 0, 'run ended nginx at --duration: a normal end');
  const samples = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Snapshot);
  // On a loaded machine the agent may come up after the first sample: /proc until it does, then
  // the agent's figures for every sample after (openTarget moves up and stays).
  const fromAgent = samples.slice(samples.findIndex((s) => s.level === 'agent'));
  const levels = samples.map((s) => s.level).join(' ');
  t.ok(fromAgent.length >= 5 && fromAgent.length >= samples.length - 2, `${fromAgent.length} of ${samples.length} samples from the agent: ${levels}`);
  t.ok(fromAgent.every((s) => s.level === 'agent' && s.allocator.name === 'jemalloc' && (s.allocatorBytes.allocated ?? 0) > 0), 'allocator figures from inside nginx');
});

t.test('--out that cannot be written (/dev/full): the run ends write-failed, the summary still has every sample', async (t) => {
  const { symlinkSync } = await import('node:fs');
  const w = await startWorkload(['steady', '10', '10', '0'], { agent: false });
  running.push(w);
  const out = join(dir, 'full.ndjson');
  symlinkSync('/dev/full', out);
  const result = await profilePid({ pid: w.pid, intervalMs: 20, durationMs: null, samples: 5, out, json: false, children: false, quiet: true }, io);
  t.equal(result.endedBy, 'write-failed');
  t.equal(result.samples, 1, 'the first sample did not fit, and ended the run');
  t.match(result.writeError, /file system is full \(ENOSPC\)/);
  t.match(summaryText(result), /ended because writing .*full\.ndjson failed; it holds whole lines only/);
});

t.test('the target\'s /proc files are let go when a run ends, and when it cannot start (--out refused)', async (t) => {
  const w = await startWorkload(['steady', '10', '10', '0'], { agent: false });
  running.push(w);
  const openFds = () => readdirSync('/proc/self/fd').length;
  const before = openFds();
  const base = { pid: w.pid, intervalMs: 20, durationMs: null, samples: 2, out: null, json: false, children: false, quiet: true };
  for (const children of [false, true]) {
    const result = await profilePid({ ...base, children }, io);
    t.equal(result.samples, 2);
    t.match(result.level, /^proc-/, 'read through /proc, whose files stay open between samples');
    t.equal(openFds(), before, `${children ? '--children' : 'one process'}: every descriptor closed at the end`);
  }
  await t.rejects(profilePid({ ...base, out: join(dir, 'samples.txt') }, io), { code: 'EINVAL' });
  t.equal(openFds(), before, 'a refused --out: closed too');
});
