/**
 * openTarget's reads and a dying target: a read that fails while the target dies must end as
 * ESRCH (the target exited), never as the read's own error. SIGKILL closes the target's agent
 * socket before /proc shows it gone, the race CI met as "the socket ... is stale" (EAGENT).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { AllocscopeError } from '../../lib/errors';
import { attachAgent } from '../../lib/targets/attach';
import { AGENT_RETRY_MS, EXIT_GRACE_MS, guardedRead, openTarget, processAlive } from '../../lib/targets/pick';
import { agentSocketExists } from '../../lib/targets/agent';
import type { Snapshot } from '../../lib/snapshot';
import { descendants } from '../../lib/proc/tree';
import { startTarget } from '../helpers/proc-child';
import { sleep, startWorkload, waitFor } from '../helpers/workload';

const codeOf = async (read: () => Promise<Snapshot>) => {
  try {
    await read();
    return 'resolved';
  } catch (error) {
    return error instanceof AllocscopeError ? error.code : (error as Error).message;
  }
};

t.test('a read that fails while its target is being killed ends as ESRCH, every time', async (t) => {
  const codes: string[] = [];
  for (let i = 0; i < 20; i++) {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('spawn', resolve));
    const pid = child.pid as number;
    // The kill is sent and the read fails at once, before the kernel has finished the target:
    // exactly the window in which a socket is refused while /proc still shows the process.
    codes.push(await codeOf(guardedRead(pid, () => {
      process.kill(pid, 'SIGKILL');
      throw new AllocscopeError('EAGENT', 'the socket is stale');
    })));
  }
  t.same(codes, Array(20).fill('ESRCH'));
});

t.test('a live target whose read fails keeps the read\'s own error, after at most the grace', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((resolve) => child.once('spawn', resolve));
  const started = Date.now();
  const code = await codeOf(guardedRead(child.pid as number, () => {
    throw new AllocscopeError('EPROTO', 'a peer that speaks another protocol');
  }));
  const waited = Date.now() - started;
  t.equal(code, 'EPROTO');
  t.ok(waited >= EXIT_GRACE_MS - 20 && waited < EXIT_GRACE_MS + 1000, `waited ${waited} ms for the target to die, then reported the read's error`);
  t.ok(processAlive(child.pid as number));
});

t.test('an agent-level target killed between reads: the next read is ESRCH', async (t) => {
  for (const allocator of [undefined, 'jemalloc'] as const) {
    const w = await startWorkload(['leak', '4096', '5', '0'], allocator === undefined ? {} : { allocator });
    t.teardown(() => w.stop());
    const source = await openTarget(w.pid);
    t.equal(source.level, 'agent');
    t.equal((await source.read()).pid, w.pid);
    w.child.kill('SIGKILL');
    t.equal(await codeOf(source.read), 'ESRCH', `${allocator ?? 'glibc'}: the target's end, not a stale socket`);
  }
});

const openFds = () => readdirSync('/proc/self/fd').length;

t.test('close(): the procfs sources let their /proc files go; reads after it reject EINVAL', async (t) => {
  // A plain process (no agent socket: the procfs kind), and a shell with two children (--children).
  const single = await startTarget('sleep', ['60']);
  t.teardown(() => single.stop());
  const tree = await startTarget('sh', ['-c', 'sleep 60 & sleep 60 & wait']);
  t.teardown(async () => {
    for (const pid of descendants(tree.pid)) process.kill(pid, 'SIGKILL');
    await tree.stop();
  });
  for (let i = 0; i < 200 && descendants(tree.pid).length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(descendants(tree.pid).length, 2, 'the shell has started both children');

  for (const [kind, pid, options, held] of [
    ['procfs', single.pid, {}, 2], // status and statm
    ['--children', tree.pid, { children: true }, 2 + 1 + 2 * 3], // the root's two, its children file, 3 per child
  ] as const) {
    const before = openFds();
    const source = await openTarget(pid, options);
    t.match(source.level, /^proc-/, `${kind}: read through /proc`);
    await source.read();
    t.equal(openFds() - before, held, `${kind}: ${held} files held open between reads`);
    source.close();
    t.equal(openFds(), before, `${kind}: every one closed`);
    source.close();
    t.equal(openFds(), before, `${kind}: a second close() changes nothing`);
    t.equal(await codeOf(source.read), 'EINVAL', `${kind}: a read after close() is refused, not an ESRCH or a read of closed files`);
  }
});

t.test('close() of an agent source holds nothing to release, and still refuses reads after it', async (t) => {
  const w = await startWorkload(['leak', '4096', '100', '0']);
  t.teardown(() => w.stop());
  const source = await openTarget(w.pid);
  t.equal(source.level, 'agent');
  const before = openFds();
  await source.read();
  source.close();
  source.close();
  t.equal(openFds(), before, 'no descriptor held, none left behind');
  t.equal(await codeOf(source.read), 'EINVAL');
  t.ok(processAlive(w.pid), 'the target itself is untouched');
});

t.test('a procfs source moves up to the agent from the read its socket appears on (here: attached meanwhile), and stays there', async (t) => {
  const w = await startWorkload(['leak', '4096', '5', '0'], { agent: false });
  t.teardown(() => w.stop());
  const source = await openTarget(w.pid);
  t.teardown(() => source.close());
  t.match(source.level, /^proc-/);
  t.match((await source.read()).level, /^proc-/, 'no agent: /proc');
  const fdsAtProc = readdirSync('/proc/self/fd').length;
  await attachAgent(w.pid, { allowInject: true, timeoutMs: 30_000 });
  const next = await source.read();
  t.equal(next.level, 'agent', 'the next read is the agent\'s');
  t.ok((next.allocatorBytes.allocated ?? 0) > 0, 'with its allocator figures');
  t.equal((await source.read()).level, 'agent', 'and stays there');
  t.ok(readdirSync('/proc/self/fd').length < fdsAtProc, 'the /proc files were let go');
});

t.test(`a socket that failed, same inode, is asked again ${AGENT_RETRY_MS / 1000} s later, not before (an agent silent while its process was stopped)`, async (t) => {
  const w = await startWorkload(['steady', '10', '50', '0']);
  t.teardown(() => w.stop());
  t.ok(await waitFor(() => agentSocketExists(w.pid), 5_000), 'the agent has its socket');
  // Stopped, the process's agent thread is too: connections queue and nobody answers.
  process.kill(w.pid, 'SIGSTOP');
  let stopped = true;
  t.teardown(() => {
    if (stopped) process.kill(w.pid, 'SIGCONT');
  });
  // The default 2 s wait for an answer: long enough for a loaded CI machine once it continues.
  const source = await openTarget(w.pid);
  const failedAt = Date.now();
  t.teardown(() => source.close());
  t.match(source.level, /^proc-/, 'its agent did not answer: /proc');
  process.kill(w.pid, 'SIGCONT');
  stopped = false;
  await sleep(200);
  t.match((await source.read()).level, /^proc-/, 'it answers again, on the same socket, but is not asked yet');
  await sleep(failedAt + AGENT_RETRY_MS - 1_500 - Date.now());
  t.match((await source.read()).level, /^proc-/, '1.5 s before the retry is due: still /proc');
  await sleep(failedAt + AGENT_RETRY_MS + 200 - Date.now());
  const next = await source.read();
  t.equal(next.level, 'agent', `the first read after ${AGENT_RETRY_MS / 1000} s asks again, and gets the agent`);
  t.ok((next.allocatorBytes.allocated ?? 0) > 0, 'with its allocator figures');
  t.equal((await source.read()).level, 'agent', 'and stays there');
});
