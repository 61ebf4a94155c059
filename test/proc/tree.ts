import t, { type Test } from 'tap';
import Ajv2020 from 'ajv/dist/2020';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import schema from '../../schema/snapshot.v1.json';
import { SmapsGate } from '../../lib/proc/smaps-rollup';
import { systemPageSize } from '../../lib/proc/statm';
import { descendants, openProcTree, readProcTree } from '../../lib/proc/tree';
import { runScenario, scenarioName } from '../helpers/child';
import { NOBODY, reapedPid, startTarget, withoutCapabilities, type Target } from '../helpers/proc-child';

const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);

// A real tree: a Node parent (several threads) with three `sleep` children, a shell with a
// grandchild, a child forked by a worker thread (listed in that thread's children file, not the
// main thread's), and, when run as root, a child running as nobody. On stdin, "spawn" starts one
// more child and "kill PID" ends one.
const TREE = `
const { spawn } = require('node:child_process');
const { Worker } = require('node:worker_threads');
for (let i = 0; i < 3; i++) spawn('sleep', ['60'], { stdio: 'ignore' });
spawn('sh', ['-c', 'sleep 60 & wait'], { stdio: 'ignore' });
if (process.getuid() === 0) spawn('sleep', ['60'], { stdio: 'ignore', uid: ${NOBODY}, gid: ${NOBODY} });
const worker = new Worker("const c = require('node:child_process').spawn('sleep', ['60'], { stdio: 'ignore' }); require('node:worker_threads').parentPort.postMessage(c.pid); setInterval(() => {}, 1e6);", { eval: true });
worker.once('message', (pid) => console.log('worker-child ' + pid + '\\nready'));
process.stdin.on('data', (chunk) => {
  for (const line of String(chunk).split('\\n')) {
    if (line === 'spawn') console.log('spawned ' + spawn('sleep', ['60'], { stdio: 'ignore' }).pid);
    else if (line.startsWith('kill ')) process.kill(Number(line.slice(5)), 'SIGKILL');
  }
});
setInterval(() => {}, 1e6);
`;
const asRoot = process.getuid?.() === 0;
/** Descendants of the fixture: 3 sleeps, sh and its sleep, the worker's child, nobody's child. */
const EXPECTED_DESCENDANTS = asRoot ? 7 : 6;

const sum = (record: Record<string, number>) => Object.values(record).reduce((a, b) => a + b, 0);
const openFds = () => readdirSync('/proc/self/fd').length;

async function startTree(t: Test): Promise<Target> {
  const tree = await startTarget(process.execPath, ['-e', TREE], { stdio: ['pipe', 'pipe', 'inherit'], readyLine: 'ready' });
  // Every process must be past exec (a half-forked child still shows the parent's memory).
  for (let i = 0; i < 200 && descendants(tree.pid).length < EXPECTED_DESCENDANTS; i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  t.teardown(async () => {
    // End only what this fixture started, by pid: its descendants, then the parent.
    for (const pid of descendants(tree.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await tree.stop();
  });
  return tree;
}

async function gone(pid: number): Promise<void> {
  // Until the parent has reaped it (a zombie is still listed among its children).
  for (let i = 0; i < 250 && readdirSync('/proc').includes(String(pid)); i++) await new Promise((r) => setTimeout(r, 20));
}

if (scenarioName() !== undefined) {
  void runScenario({
    // Root without CAP_SYS_PTRACE: the child running as nobody keeps its smaps_rollup to itself.
    withoutPtrace: () => {
      const snapshot = readProcTree(Number(process.env.TARGET_PID), { smapsGate: new SmapsGate() });
      return { levelNote: snapshot.levelNote, pss: snapshot.processBytes.pss, known: Object.keys(snapshot.raw.tree_pss).length, processes: snapshot.raw.tree.processes };
    },
  });
} else {
  t.test('a real tree: every descendant found (a grandchild, a child forked by a worker thread), RSS summed, PSS per process', async (t) => {
    const fixture = await startTree(t);
    const workerChild = Number(/worker-child (\d+)/.exec(fixture.output())?.[1]);
    const below = descendants(fixture.pid);
    t.equal(below.length, EXPECTED_DESCENDANTS, `descendants: ${below.join(' ')}`);
    t.ok(below.includes(workerChild), 'the worker thread\'s child is found through its thread\'s children file');
    t.same(descendants(fixture.pid, 2).length, 2, 'the limit of descendants() holds');

    const tree = openProcTree(fixture.pid, { smapsGate: new SmapsGate() });
    t.teardown(() => tree.close());
    const s = tree.read();
    t.ok(validate(s), JSON.stringify(validate.errors));
    t.equal(s.raw.tree.processes, EXPECTED_DESCENDANTS + 1);
    t.same(Object.keys(s.raw.tree_rss).map(Number).sort(), [fixture.pid, ...below].sort());
    t.equal(s.processBytes.rss, sum(s.raw.tree_rss), 'RSS is the sum over the tree');
    t.equal(Object.keys(s.raw.tree_pss).length, EXPECTED_DESCENDANTS + 1, 'PSS for every process (root included)');
    t.equal(s.processBytes.pss, sum(s.raw.tree_pss), 'PSS is the sum over the tree');
    t.ok((s.processBytes.pss as number) < (s.processBytes.rss as number), 'PSS counts shared pages once, RSS once per process');
    t.equal(s.raw.tree.smapsReads, EXPECTED_DESCENDANTS, 'smaps_rollup read once per descendant');
    t.ok((s.processBytes.rssAnon as number) > 0 && (s.processBytes.rssAnon as number) < (s.processBytes.rss as number));
    t.equal(s.processBytes.rssFile, null, 'the file/shmem split is not read per descendant');
    t.equal(s.processBytes.peakRss, null, 'a sum of peaks is no peak');
    t.equal(s.source, 'procfs');
    t.equal(s.level, 'proc-detailed', 'the root is read at its deepest procfs level');
    t.match(s.levelNote, /a tree of \d+ processes.*PSS per descendant from smaps_rollup at most once per 10 s/);
    t.equal(tree.openMembers, EXPECTED_DESCENDANTS);
  });

  t.test('PSS at the gate\'s cadence: later reads reuse the last figures, a gate with no interval reads again', async (t) => {
    const fixture = await startTree(t);
    const slow = openProcTree(fixture.pid, { smapsGate: new SmapsGate({ minIntervalMs: 60_000 }) });
    t.teardown(() => slow.close());
    const first = slow.read();
    await new Promise((r) => setTimeout(r, 50));
    const second = slow.read();
    t.equal(first.raw.tree.smapsReads, EXPECTED_DESCENDANTS);
    t.equal(second.raw.tree.smapsReads, 0, 'no smaps_rollup read inside the interval');
    t.same(Object.keys(second.raw.tree_pss), Object.keys(first.raw.tree_pss), 'yet PSS is there for every process');
    t.ok(Object.values(second.raw.tree_pss_age_ms).every((age) => age >= 40), 'and says how old it is');
    t.equal(Object.keys(second.raw.tree_pss_age_ms).length, EXPECTED_DESCENDANTS + 1, 'the root\'s too');
    t.match(second.levelNote, /at most once per 60 s each \(the oldest figure is 0 s old\)/);

    // After the first read of all, the members' next reads spread over the interval after it
    // (here 2 s: due between 2 and 4 s, by golden-ratio fractions): read at ~2.7 s, some are due,
    // not all (a loaded machine may delay the read by up to ~1 s and still see that).
    const spread = openProcTree(fixture.pid, { smapsGate: new SmapsGate({ minIntervalMs: 2000, maxDutyRatio: 1 }) });
    t.teardown(() => spread.close());
    t.equal(spread.read().raw.tree.smapsReads, EXPECTED_DESCENDANTS);
    await new Promise((r) => setTimeout(r, 2700));
    const some = spread.read().raw.tree.smapsReads;
    t.ok(some > 0 && some < EXPECTED_DESCENDANTS, `${some} of ${EXPECTED_DESCENDANTS} re-read: spread, not all in one sample`);

    // The default: the root at the shared gate's 10 s, the descendants at 30 s.
    const byDefault = openProcTree(fixture.pid);
    t.teardown(() => byDefault.close());
    t.match(byDefault.read().levelNote, /PSS per descendant from smaps_rollup at most once per 30 s each/);

    const eager = openProcTree(fixture.pid, { smapsGate: new SmapsGate({ minIntervalMs: 0, maxDutyRatio: 1 }) });
    t.teardown(() => eager.close());
    eager.read();
    t.equal(eager.read().raw.tree.smapsReads, EXPECTED_DESCENDANTS, 'interval 0: read every time');
  });

  t.test('a gate that refuses (RSS limit): PSS unknown, and the note says why', async (t) => {
    const fixture = await startTree(t);
    const s = readProcTree(fixture.pid, { smapsGate: new SmapsGate({ maxRssBytes: 0 }) });
    t.equal(s.processBytes.pss, null);
    t.same(s.raw.tree_pss, {});
    t.match(s.levelNote, new RegExp(`PSS unknown for ${EXPECTED_DESCENDANTS} of ${EXPECTED_DESCENDANTS} descendants: smaps_rollup not read: RSS .* above the 0 MiB limit`));
  });

  t.test('members that exit are let go (files closed), new ones are met, a limit is kept', async (t) => {
    const fixture = await startTree(t);
    const before = openFds();
    const tree = openProcTree(fixture.pid, { smapsGate: new SmapsGate() });
    const first = tree.read();
    const victim = Number(Object.keys(first.raw.tree_rss).find((pid) => Number(pid) !== fixture.pid));
    fixture.child.stdin?.write(`kill ${victim}\n`);
    await gone(victim);
    const second = tree.read();
    t.equal(second.raw.tree.processes, first.raw.tree.processes - 1);
    t.notOk(String(victim) in second.raw.tree_rss);
    t.equal(tree.openMembers, EXPECTED_DESCENDANTS - 1);

    fixture.child.stdin?.write('spawn\n');
    let spawned = 0;
    for (let i = 0; i < 250 && spawned === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      spawned = Number(/spawned (\d+)/.exec(fixture.output())?.[1] ?? 0);
    }
    await new Promise((r) => setTimeout(r, 200));
    const third = tree.read();
    t.ok(String(spawned) in third.raw.tree_rss, 'a child started between reads is in the next one');
    t.ok(String(spawned) in third.raw.tree_pss, 'with its PSS (read on first sight)');
    tree.close();
    tree.close();
    t.equal(openFds(), before, 'close() lets every file go');

    const limited = readProcTree(fixture.pid, { limit: 2 });
    t.equal(limited.raw.tree.processes, 3);
    // The processes met but not read (the shell among them, so its child is not even met).
    t.ok(limited.raw.tree.notRead >= EXPECTED_DESCENDANTS - 3, `${limited.raw.tree.notRead} not read`);
    t.equal(openFds(), before, 'readProcTree closes what it opened');
  });

  t.test('errors: no such root, a root that exits, a bad limit', async (t) => {
    const dead = await reapedPid();
    t.throws(() => openProcTree(dead), { code: 'ESRCH' });
    t.throws(() => openProcTree(0), { code: 'EINVAL' });
    t.throws(() => openProcTree(1, { limit: 1.5 }), { code: 'EINVAL' });
    const fixture = await startTree(t);
    const tree = openProcTree(fixture.pid, { smapsGate: new SmapsGate() });
    t.teardown(() => tree.close());
    tree.read();
    for (const pid of descendants(fixture.pid)) process.kill(pid, 'SIGKILL');
    await fixture.stop();
    t.throws(() => tree.read(), { code: 'ESRCH' });
  });

  t.test('fixtures under procRoot: children that exit between listing and reading, one without smaps_rollup', async (t) => {
    // The races a real tree rarely shows on cue: a listed child whose directory is gone (exited
    // and reaped), one whose statm reads empty, one on a kernel without smaps_rollup.
    const root = mkdtempSync(join(tmpdir(), 'allocscope-tree-'));
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    const proc = (pid: number, files: Record<string, string>, children = '') => {
      mkdirSync(join(root, String(pid), 'task', String(pid)), { recursive: true });
      writeFileSync(join(root, String(pid), 'task', String(pid), 'children'), children);
      for (const [name, text] of Object.entries(files)) writeFileSync(join(root, String(pid), name), text);
    };
    const status = (pid: number) => `Name:\tfake\nState:\tS (sleeping)\nTgid:\t${pid}\nPPid:\t1\nUid:\t0\t0\t0\t0\nThreads:\t1\nVmRSS:\t400 kB\n`;
    const rollup = 'Rss: 400 kB\nPss: 200 kB\nSwap: 0 kB\nLazyFree: 0 kB\n';
    proc(100, { status: status(100), statm: '1000 100 60 1 0 20 0\n', maps: '', environ: '', smaps_rollup: rollup }, '200 201 202 203 204 ');
    proc(204, { statm: '0 0 0 0 0 0 0\n' }); // a zombie: no memory, PSS 0
    proc(201, { statm: '' });
    proc(202, { statm: '1000 100 60 1 0 20 0\n' });
    proc(203, { statm: '1000 100 60 1 0 20 0\n', smaps_rollup: rollup });
    const tree = openProcTree(100, { procRoot: root, smapsGate: new SmapsGate() });
    t.teardown(() => tree.close());
    const s = tree.read();
    t.equal(s.raw.tree.processes, 4, 'the root, 202, 203 and the zombie 204: 200 and 201 have exited');
    t.same(Object.keys(s.raw.tree_pss).sort(), ['100', '203', '204']);
    t.equal(s.raw.tree_pss['204'], 0, 'a zombie has no memory: PSS 0, known');
    t.equal(s.raw.tree.smapsReads, 1, 'smaps_rollup of 203 only (202 has none, the zombie no memory)');
    t.equal(tree.openMembers, 3);
    t.equal(s.processBytes.rss, 3 * 100 * systemPageSize());
    t.equal(s.processBytes.rssAnon, 3 * 40 * systemPageSize(), 'statm resident - shared, per process');
    t.match(s.levelNote, /PSS unknown for 1 of 3 descendants: .*smaps_rollup does not exist on this kernel/);
    t.throws(() => openProcTree(201, { procRoot: root }), 'a root without status cannot be opened');
    tree.close();

    // A member whose figures a double cannot hold: still a member, its figures unknown (never a
    // wrong number, nor taken for a process that exited).
    writeFileSync(join(root, '100', 'task', '100', 'children'), '203 205 206 ');
    proc(205, { statm: '1000 99999999999999999999 60 1 0 20 0\n', smaps_rollup: rollup });
    proc(206, { statm: '1000 100 60 1 0 20 0\n', smaps_rollup: rollup.replace('Pss: 200 kB', 'Pss: 99999999999999999999 kB') });
    const big = openProcTree(100, { procRoot: root, smapsGate: new SmapsGate() });
    t.teardown(() => big.close());
    const b = big.read();
    t.equal(b.raw.tree.processes, 4, 'the root, 203, 205 and 206');
    t.same(Object.keys(b.raw.tree_rss).sort(), ['100', '203', '206'], '205\'s RSS is unknown');
    t.equal(b.processBytes.rss, null, 'so is the sum');
    t.same(Object.keys(b.raw.tree_pss).sort(), ['100', '203'], '206\'s PSS is unknown');
    t.equal(b.processBytes.pss, null);
    rmSync(join(root, '100', 'task', '100', 'children'));
    t.throws(() => openProcTree(100, { procRoot: root }), { code: 'EUNSUPPORTED' }, 'nor one without a children file (Linux < 3.5)');
  });

  t.test('without CAP_SYS_PTRACE the descendants keep their PSS to themselves; the note says so', { skip: asRoot || process.env.CI ? false : 'needs root (a child as nobody, capabilities dropped)' }, async (t) => {
    const fixture = await startTree(t);
    const result = await withoutCapabilities<{ levelNote: string; pss: number | null; known: number; processes: number }>(__filename, 'withoutPtrace', { TARGET_PID: String(fixture.pid) });
    t.equal(result.processes, EXPECTED_DESCENDANTS + 1, 'every process is still counted (statm is world-readable)');
    // Root without capabilities may not read the smaps of processes holding more capabilities
    // than it has (every root process here) nor of another uid: PSS is unknown, and said so.
    t.ok(result.known < EXPECTED_DESCENDANTS + 1, `${result.known} PSS figures`);
    t.equal(result.pss, null, 'so no PSS sum');
    t.match(result.levelNote, /PSS unknown for \d+ of \d+ descendants: .*is not readable by uid 0: it needs the target's uid or CAP_SYS_PTRACE/);
  });
}
