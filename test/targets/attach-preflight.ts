import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkLibraryLoadable,
  checkPid,
  checkPtraceAllowed,
  checkRunnable,
  checkSameNamespaces,
  currentCaller,
  findGdb,
  preloadsAgent,
  processState,
  type PtraceCaller,
  readStatus,
  stopSignalPending,
  targetAgentDir,
} from '../../lib/targets/attach-preflight';
import { agentLibraryPath } from '../../lib/targets/agent';
import { startWorkload, waitFor, type Workload } from '../helpers/workload';

const running: Workload[] = [];
t.teardown(() => running.forEach((w) => w.stop()));
async function start(options: Parameters<typeof startWorkload>[1] = {}): Promise<Workload> {
  const workload = await startWorkload(['steady', '10', '5', '0'], { agent: false, ...options });
  running.push(workload);
  return workload;
}

const NOBODY = 65534;
/** A /proc/PID/status as the checks read it. */
const statusOf = (uid: number, gid = uid, groups = '') => ({ Uid: `${uid}\t${uid}\t${uid}\t${uid}`, Gid: `${gid}\t${gid}\t${gid}\t${gid}`, Groups: groups });
const caller = (over: Partial<PtraceCaller> = {}): PtraceCaller => ({ uid: 1000, gid: 1000, capSysPtrace: false, yamaScope: 0, ...over });

t.test('procfs readers: state, status, pending stops; null for the gone', async (t) => {
  t.equal(processState(process.pid), 'R', 'this process runs while it reads itself');
  t.equal(readStatus(process.pid)?.Pid, String(process.pid));
  t.equal(readStatus(process.pid, process.pid)?.Pid, String(process.pid), 'a thread of it');
  t.equal(processState(4_194_305), null);
  t.equal(readStatus(4_194_305), null);
  t.equal(stopSignalPending(process.pid), false);
  t.equal(stopSignalPending(4_194_305), false);
});

t.test('checkPid and checkRunnable', async (t) => {
  for (const bad of [0, -3, 2.5, '12', null]) t.throws(() => checkPid(bad), { code: 'EINVAL' }, String(bad));
  t.throws(() => checkPid(process.pid), { code: 'EINVAL' }, 'itself');
  t.equal(checkPid(1), 1);
  t.throws(() => checkRunnable(4_194_305), { code: 'ESRCH' });
  // A zombie: a child that exits while its parent sleeps and never reaps it.
  const parent = spawn('python3', ['-c', 'import os, time\npid = os.fork()\nif pid == 0: os._exit(0)\nprint(pid, flush=True)\ntime.sleep(10)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => parent.kill('SIGKILL'));
  const zombie = await new Promise<number>((resolve) => parent.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  t.ok(await waitFor(() => processState(zombie) === 'Z', 3000), `pid ${zombie} is a zombie`);
  t.throws(() => checkRunnable(zombie), { code: 'ESRCH' }, 'a zombie has exited');
  const w = await start();
  t.equal(checkRunnable(w.pid).Pid, String(w.pid));
});

t.test('checkPtraceAllowed: the kernel rule, with its reason', async (t) => {
  const w = await start();
  const root = statusOf(0);
  t.doesNotThrow(() => checkPtraceAllowed(w.pid, readStatus(w.pid) ?? {}), 'root on root (this test)');
  t.throws(() => checkPtraceAllowed(w.pid, root, caller()), { code: 'EACCES', details: { targetUid: 0, callerUid: 1000 } }, 'another uid');
  t.doesNotThrow(() => checkPtraceAllowed(w.pid, root, caller({ capSysPtrace: true })), 'CAP_SYS_PTRACE may');
  t.throws(() => checkPtraceAllowed(w.pid, statusOf(1000, 1001), caller()), { code: 'EACCES' }, 'same uid, other gid');
  // Same uid as the caller, but /proc/PID is owned by root: what procfs shows for a non-dumpable process.
  t.throws(() => checkPtraceAllowed(w.pid, statusOf(1000), caller()), { code: 'EACCES' }, 'not dumpable');
  t.throws(() => checkPtraceAllowed(4_194_305, statusOf(1000), caller()), { code: 'ESRCH' }, 'gone meanwhile');
  const self = statusOf(0);
  for (const [scope, capable, code] of [
    [1, false, 'EACCES'],
    [2, false, 'EACCES'],
    [1, true, null],
    [2, true, null],
    [3, true, 'EACCES'],
    [null, false, null],
  ] as const) {
    const check = () => checkPtraceAllowed(w.pid, self, caller({ uid: 0, gid: 0, capSysPtrace: capable, yamaScope: scope }));
    if (code === null) t.doesNotThrow(check, `yama ${scope}, cap ${capable}`);
    else t.throws(check, { code, details: { yamaScope: scope } }, `yama ${scope}, cap ${capable}`);
  }
  const me = currentCaller();
  t.equal(me.uid, process.getuid?.());
  t.equal(typeof me.capSysPtrace, 'boolean');
});

t.test('checkSameNamespaces: a process in another PID namespace is refused', async (t) => {
  const w = await start();
  t.doesNotThrow(() => checkSameNamespaces(w.pid));
  t.throws(() => checkSameNamespaces(4_194_305), { code: 'EACCES' }, 'unreadable (gone)');
  const unshare = spawn('unshare', ['--pid', '--fork', '--mount-proc', 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => unshare.kill('SIGKILL'));
  const inside = async () => {
    await waitFor(() => readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim() !== '', 2000).catch(() => false);
    return Number(readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim().split(' ')[0]);
  };
  const pid = await inside().catch(() => 0);
  if (pid > 0) {
    t.throws(() => checkSameNamespaces(pid), { code: 'EUNSUPPORTED', details: { namespace: 'pid' } });
  } else {
    t.comment('unshare --pid is not permitted here; skipped');
  }
});

t.test('checkLibraryLoadable: the target must be able to read it, nobody else to swap it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-preflight-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pid = process.pid + 1; // only used in messages
  t.doesNotThrow(() => checkLibraryLoadable(pid, statusOf(0), agentLibraryPath()), 'the built agent, for root');
  t.doesNotThrow(() => checkLibraryLoadable(pid, statusOf(NOBODY), agentLibraryPath()), 'and for nobody (0755 tree)');

  const closed = join(dir, 'closed');
  mkdirSync(closed, { mode: 0o700 });
  const library = join(closed, 'lib.so');
  copyFileSync(agentLibraryPath(), library);
  chmodSync(dir, 0o755);
  const nobody = statusOf(NOBODY);
  t.throws(() => checkLibraryLoadable(pid, nobody, library), { code: 'EACCES' }, 'nobody cannot enter a 0700 directory');
  chmodSync(closed, 0o750);
  chownSync(closed, 0, NOBODY);
  chmodSync(library, 0o600);
  t.throws(() => checkLibraryLoadable(pid, nobody, library), { code: 'EACCES' }, 'nobody enters through its group, but cannot read a 0600 file');
  chmodSync(library, 0o640);
  chownSync(library, 0, NOBODY);
  t.doesNotThrow(() => checkLibraryLoadable(pid, nobody, library), 'readable through its group');
  chmodSync(closed, 0o755);
  chmodSync(library, 0o604);
  t.doesNotThrow(() => checkLibraryLoadable(pid, statusOf(1234), library), 'readable by others');
  chownSync(library, NOBODY, NOBODY);
  chmodSync(library, 0o400);
  t.doesNotThrow(() => checkLibraryLoadable(pid, nobody, library), "the target's own file");
  t.throws(() => checkLibraryLoadable(pid, statusOf(0), library), { code: 'EACCES' }, 'owned by a user who could swap it, for a root target');
  chownSync(library, 0, 0);
  chmodSync(library, 0o664);
  t.throws(() => checkLibraryLoadable(pid, statusOf(0), library), { code: 'EACCES' }, 'group-writable');
  chmodSync(library, 0o644);
  chmodSync(closed, 0o757);
  t.throws(() => checkLibraryLoadable(pid, statusOf(0), library), { code: 'EACCES' }, 'a world-writable directory');
  chmodSync(closed, 0o1777);
  t.doesNotThrow(() => checkLibraryLoadable(pid, statusOf(0), library), 'sticky (like /tmp) with a file of a trusted owner');
  t.throws(() => checkLibraryLoadable(pid, statusOf(0), join(closed, 'missing.so')), { code: 'EAGENT' });
});

t.test('findGdb', async (t) => {
  t.match(findGdb(), /\/gdb$/);
  t.equal(findGdb('/usr/bin/gdb'), '/usr/bin/gdb');
  t.throws(() => findGdb('/usr/bin'), { code: 'EUNSUPPORTED' }, 'a directory is not a gdb');
  const path = process.env.PATH;
  t.teardown(() => {
    process.env.PATH = path;
  });
  process.env.PATH = '/nonexistent:/proc';
  t.throws(() => findGdb(), { code: 'EUNSUPPORTED' });
  delete process.env.PATH;
  t.match(findGdb(), /^\/(usr\/)?bin\/gdb$/, 'without PATH: /usr/bin:/bin');
});

t.test("the target's agent directory and preload, from its environment", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-preflight-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const plain = await start();
  t.equal(targetAgentDir(plain.pid), undefined);
  t.equal(preloadsAgent(plain.pid), false);
  const configured = await start({ agent: true, env: { ALLOCSCOPE_AGENT_DIR: dir } });
  t.equal(targetAgentDir(configured.pid), dir);
  t.equal(preloadsAgent(configured.pid), true);
  const empty = await start({ env: { ALLOCSCOPE_AGENT_DIR: '' } });
  t.equal(targetAgentDir(empty.pid), undefined, 'empty means unset, as in the agent');
  t.equal(targetAgentDir(4_194_305), undefined);
  t.equal(preloadsAgent(4_194_305), false);
});
