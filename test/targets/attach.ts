import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import schema from '../../schema/snapshot.v1.json';
import { readAgentSnapshot } from '../../lib/targets/agent';
import { attachAgent, type AttachOptions, type AttachResult, type Injector } from '../../lib/targets/attach';
import { processState, readStatus } from '../../lib/targets/attach-preflight';
import { skipUnlessInstalled } from '../helpers/child';
import { REGISTER_CHECK, startInjectTarget } from '../helpers/inject-target';
import { sleep, startWorkload, waitFor, type Workload } from '../helpers/workload';

const validate = new Ajv2020().compile(schema);
const running: Workload[] = [];
t.teardown(() => running.forEach((w) => w.stop()));

// No agent preloaded: attach is how the agent gets in.
async function start(args: string[], options: Parameters<typeof startWorkload>[1] = {}): Promise<Workload> {
  const workload = await startWorkload(args, { agent: false, ...options });
  running.push(workload);
  return workload;
}

/** Alive, not stopped, and no tracer left behind. */
function runsFree(pid: number): string | true {
  const state = processState(pid);
  const tracer = readStatus(pid)?.TracerPid;
  if (state === null || state === 'Z' || state === 'X') return `pid ${pid} is gone (${state})`;
  if (state === 'T' || state === 't') return `pid ${pid} is stopped (${state})`;
  if (tracer !== '0') return `pid ${pid} is still traced by ${tracer}`;
  return true;
}

const stoppedTimes: number[] = [];
t.teardown(() => {
  if (stoppedTimes.length > 0) t.comment(`target stop per attach (sampled), ms: ${stoppedTimes.join(', ')}`);
});

async function attachAndCheck(t: tap.Test, w: Workload, name: string, options: Partial<AttachOptions> = {}): Promise<AttachResult> {
  const result = await attachAgent(w.pid, { allowInject: true, timeoutMs: 30_000, ...options });
  t.equal(result.injected, true, `injected (${result.safePoint}, stopped ~${result.stoppedMs} ms, ${result.injector} ${result.injectorMs} ms)`);
  t.equal(result.injector, options.injector ?? 'ptrace', 'ptrace is the default injector on x86_64');
  if (result.injector === 'ptrace') t.ok(result.callMs !== null && result.callMs > 0 && result.callMs < 5000, `the borrowed thread's call took ${result.callMs} ms`);
  else t.equal(result.callMs, null);
  t.equal(result.snapshot.allocator.name, name, result.snapshot.allocator.detectedBy);
  t.equal(result.snapshot.level, 'attached');
  t.equal(result.snapshot.source, 'attach');
  t.equal(result.snapshot.pid, w.pid);
  t.ok(validate(result.snapshot), JSON.stringify(validate.errors));
  t.equal(runsFree(w.pid), true, 'the target runs on, untraced');
  t.equal(result.resumedTarget, false, 'the injector detached cleanly: nothing to resume');
  stoppedTimes.push(result.stoppedMs ?? -1);
  return result;
}

const INJECTORS: Injector[] = ['ptrace', 'gdb'];

for (const [name, injector] of [['glibc', 'ptrace'], ['jemalloc', 'ptrace'], ['glibc', 'gdb'], ['jemalloc', 'gdb']] as const) {
  t.test(`${name}, ${injector} injector: attach loads the agent into a running process, which keeps running`, { skip: name === 'glibc' ? false : skipUnlessInstalled(name) }, async (t) => {
    // 64 KiB every 10 ms, never freed.
    const w = await start(['leak', '65536', '10', '0'], { allocator: name });
    const first = await attachAndCheck(t, w, name, { injector });
    t.match(first.safePoint, /^blocked in (clock_)?nanosleep$/, 'a thread asleep in nanosleep is a safe point');
    await sleep(400);
    const second = await readAgentSnapshot(w.pid);
    const grown = (second.allocatorBytes.allocated ?? 0) - (first.snapshot.allocatorBytes.allocated ?? 0);
    t.ok(grown > 1024 * 1024, `it kept allocating after the attach: +${grown} bytes in 400 ms`);
    t.equal(runsFree(w.pid), true);
  });
}

for (const injector of INJECTORS) {
  t.test(`${injector}: a process busy inside malloc is injected at a safe point, not mid-malloc`, async (t) => {
    // heaptrack's `call dlopen("...")` killed this target in 14 of 15 tries (gdb malloc'd the string
    // inside an unfinished malloc). Three attaches in a row must all leave it running. gdb waits for
    // an allocator's entry; the ptrace injector samples until the thread runs the program's own code.
    const safe = injector === 'gdb' ? /^at the entry of (malloc|free|calloc|realloc)$|^blocked in/ : /^running its own code \(heap_workload\)$|^blocked in/;
    for (let i = 0; i < 3; i++) {
      // ptrace: blocks of varied sizes (more of the program's own code between the calls than
      // steady's fixed 1000 B, whose loop is ~0.1% of its time: a sample may take seconds to land there).
      const w = await start(injector === 'gdb' ? ['steady', '100000', '0', '0'] : ['fragment', '1', '0', '0']);
      const result = await attachAndCheck(t, w, 'glibc', { injector });
      t.match(result.safePoint, safe, String(result.safePoint));
      await sleep(100);
      t.equal(runsFree(w.pid), true, 'still running 100 ms later');
      w.stop();
    }
  });
}

t.test('a Node process: injected next to libuv, and the event loop keeps turning', async (t) => {
  // A timer every 5 ms counts ticks on stdout; after the attach the count must still grow.
  const node = spawn(process.execPath, ['-e', 'let n = 0; setInterval(() => n++, 5); setInterval(() => console.log(n), 100); console.log("ready")'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => node.kill('SIGKILL'));
  let last = '';
  node.stdout.on('data', (chunk: Buffer) => (last = chunk.toString().trim().split('\n').pop() ?? ''));
  t.ok(await waitFor(() => /^\d+$/.test(last), 10_000), 'node is up and counting');
  const result = await attachAgent(node.pid as number, { allowInject: true, timeoutMs: 30_000 });
  t.equal(result.snapshot.allocator.name, 'glibc');
  t.equal(result.snapshot.level, 'attached');
  t.match(result.safePoint, /^blocked in |^running its own code \(node\)$/, String(result.safePoint));
  t.comment(`node: stopped ~${result.stoppedMs} ms, ${result.injector} ${result.injectorMs} ms`);
  const before = Number(last);
  await sleep(300);
  t.ok(Number(last) > before, `ticks went on: ${before} -> ${last}`);
  t.equal(runsFree(node.pid as number), true);
});

t.test('gdb with libc debug symbols allowed: the same call forms work (the target just stops longer)', async (t) => {
  const w = await start(['leak', '4096', '5', '0']);
  await attachAndCheck(t, w, 'glibc', { injector: 'gdb', debugSymbols: true });
});

t.test('an agent that already answers is returned without injecting', async (t) => {
  const preloaded = await start(['steady', '10', '5', '0'], { agent: true });
  t.ok(await waitFor(() => readStatus(preloaded.pid) !== null, 1000));
  await sleep(200); // the agent thread opens its socket
  const viaPreload = await attachAgent(preloaded.pid, { allowInject: true });
  t.equal(viaPreload.injected, false);
  t.equal(viaPreload.snapshot.level, 'agent', 'started with LD_PRELOAD: level agent');
  t.equal(viaPreload.stoppedMs, null);

  const w = await start(['steady', '10', '5', '0']);
  await attachAgent(w.pid, { allowInject: true, timeoutMs: 30_000 });
  const again = await attachAgent(w.pid, { allowInject: true });
  t.equal(again.injected, false, 'a second attach finds the injected agent');
  t.equal(again.snapshot.level, 'attached');
  t.equal(runsFree(w.pid), true);
});

t.test('refusals: no consent, bad pid, no such process, this process', async (t) => {
  const w = await start(['steady', '10', '5', '0']);
  await t.rejects(attachAgent(w.pid, { allowInject: false }), { code: 'EINVAL' });
  await t.rejects(attachAgent(w.pid, undefined as never), { code: 'EINVAL' });
  t.equal(readStatus(w.pid)?.TracerPid, '0', 'refused before gdb ever ran');
  for (const pid of [0, -1, 1.5, Number.NaN]) await t.rejects(attachAgent(pid, { allowInject: true }), { code: 'EINVAL' }, String(pid));
  await t.rejects(attachAgent(process.pid, { allowInject: true }), { code: 'EINVAL' }, 'not itself');
  await t.rejects(attachAgent(w.pid, { allowInject: true, timeoutMs: 0 }), { code: 'EINVAL' });
  await t.rejects(attachAgent(w.pid, { allowInject: true, injector: 'lldb' as Injector }), { code: 'EINVAL' }, 'an unknown injector');
  await t.rejects(attachAgent(w.pid, { allowInject: true, debugSymbols: true }), { code: 'EINVAL' }, 'a gdb option with the ptrace injector');
  await t.rejects(attachAgent(w.pid, { allowInject: true, injector: 'ptrace', gdbPath: '/usr/bin/gdb' }), { code: 'EINVAL' });
  const gone = await start(['steady', '10', '5', '0']);
  gone.stop();
  await new Promise((resolve) => gone.child.once('exit', resolve));
  await t.rejects(attachAgent(gone.pid, { allowInject: true }), { code: 'ESRCH' }, 'a dead pid');
  await t.rejects(attachAgent(4_194_304 + 1, { allowInject: true }), { code: 'ESRCH' }, 'beyond pid_max');
});

t.test('a stopped target is refused and left exactly as it was', async (t) => {
  const w = await start(['steady', '10', '5', '0']);
  process.kill(w.pid, 'SIGSTOP');
  t.teardown(() => process.kill(w.pid, 'SIGCONT'));
  t.ok(await waitFor(() => processState(w.pid) === 'T', 2000));
  await t.rejects(attachAgent(w.pid, { allowInject: true }), { code: 'EINVAL' });
  t.equal(processState(w.pid), 'T', 'still stopped: not ours to resume');
  t.equal(readStatus(w.pid)?.TracerPid, '0');
  process.kill(w.pid, 'SIGCONT');
  t.ok(await waitFor(() => runsFree(w.pid) === true, 2000));
});

t.test('a process another debugger traces is refused', async (t) => {
  const w = await start(['steady', '10', '5', '0']);
  const other = spawn('gdb', ['-nx', '-batch', '-p', String(w.pid), '-ex', 'python import time; time.sleep(20)'], { stdio: 'ignore' });
  t.teardown(() => other.kill('SIGKILL'));
  // Attached and settled (state t): a gdb killed before it has taken the attach SIGSTOP leaves
  // the process in group stop, which is this test's doing, not attach's.
  t.ok(await waitFor(() => readStatus(w.pid)?.TracerPid === String(other.pid) && processState(w.pid) === 't', 10_000), 'the other gdb attached');
  await t.rejects(attachAgent(w.pid, { allowInject: true }), { code: 'EACCES' });
  other.kill('SIGTERM'); // gdb quits and detaches
  t.ok(await waitFor(() => runsFree(w.pid) === true, 5000), 'runs once the other debugger is gone');
});

t.test('ptrace, a deadline shorter than the attach: either it loaded (the call was under way) or ETIMEDOUT with nothing loaded', async (t) => {
  for (let i = 0; i < 5; i++) {
    const w = await start(['leak', '4096', '5', '0']);
    const outcome = await attachAgent(w.pid, { allowInject: true, timeoutMs: 1 }).then(
      (result) => (result.injected ? 'loaded' : 'not injected'),
      (e: { code: string }) => e.code,
    );
    const loaded = readFileSync(`/proc/${w.pid}/maps`, 'utf8').includes('liballocscope_agent');
    t.ok((outcome === 'loaded' && loaded) || (outcome === 'ETIMEDOUT' && !loaded), `${outcome}, agent in its maps: ${loaded}`);
    t.equal(runsFree(w.pid), true);
    w.stop();
  }
});

t.test('a deadline too short for gdb: ETIMEDOUT, nothing loaded, and the target runs on', async (t) => {
  const w = await start(['leak', '4096', '5', '0']);
  const started = Date.now();
  await t.rejects(attachAgent(w.pid, { allowInject: true, injector: 'gdb', timeoutMs: 1 }), { code: 'ETIMEDOUT' });
  t.ok(Date.now() - started < 15_000, `the cut is bounded: ${Date.now() - started} ms`);
  t.equal(runsFree(w.pid), true, 'alive, running, untraced');
  t.equal(readFileSync(`/proc/${w.pid}/maps`, 'utf8').includes('liballocscope_agent'), false, 'the cancelled gdb loaded nothing');
  await sleep(100);
  t.equal(runsFree(w.pid), true, 'and 100 ms later');
});

t.test('an abort mid-attach: ECANCELED, gdb detaches, the target runs on', async (t) => {
  const w = await start(['leak', '4096', '5', '0']);
  const controller = new AbortController();
  const attach = attachAgent(w.pid, { allowInject: true, injector: 'gdb', debugSymbols: true, signal: controller.signal, timeoutMs: 30_000 });
  const traced = await waitFor(() => readStatus(w.pid)?.TracerPid !== '0', 10_000);
  controller.abort();
  const outcome = await attach.then(
    () => 'loaded',
    (e: { code: string }) => e.code,
  );
  t.ok(traced, 'gdb had attached when the abort came');
  t.ok(outcome === 'ECANCELED' || outcome === 'loaded', outcome);
  t.equal(runsFree(w.pid), true);
  const aborted = new AbortController();
  aborted.abort();
  await t.rejects(attachAgent(w.pid, { allowInject: true, signal: aborted.signal }), { code: 'ECANCELED' }, 'already aborted: gdb never starts');
});

t.test('gdb: no thread reaches a safe point (a busy loop that never calls malloc): nothing injected', async (t) => {
  const loop = spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
  t.teardown(() => loop.kill('SIGKILL'));
  const pid = loop.pid as number;
  await sleep(100);
  // timeoutMs 6000: a 1200 ms safe-point budget, and time for gdb on a loaded machine.
  const error = await attachAgent(pid, { allowInject: true, injector: 'gdb', timeoutMs: 6000 }).catch((e: { code: string; details: { step?: string } }) => e);
  t.match(error, { code: 'ETIMEDOUT' });
  t.comment(`ended by: ${(error as { details: { step?: string } }).details.step ?? 'the deadline'}`);
  t.equal(runsFree(pid), true, 'the loop runs on, untraced');
  t.equal(readFileSync(`/proc/${pid}/maps`, 'utf8').includes('liballocscope_agent'), false, 'nothing was loaded');
});

t.test("a library the target cannot load: EAGENT with dlopen's reason, the target runs on", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-attach-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const notElf = join(dir, 'libnot-elf.so');
  writeFileSync(notElf, 'not an ELF file\n', { mode: 0o644 });
  const w = await start(['leak', '4096', '5', '0']);
  for (const injector of INJECTORS) {
    const error = await attachAgent(w.pid, { allowInject: true, injector, library: notElf, timeoutMs: 30_000 }).catch((e: { code: string; details: { step: string } }) => e);
    t.match(error, { code: 'EAGENT', details: { step: 'dlopen' }, message: /invalid ELF header|file too short/ }, `${injector}: dlopen's own words`);
    t.equal(runsFree(w.pid), true);
  }
  await t.rejects(attachAgent(w.pid, { allowInject: true, library: 'libnot-elf.so' }), { code: 'EINVAL' }, 'a relative path');
  await t.rejects(attachAgent(w.pid, { allowInject: true, library: join(dir, 'missing.so') }), { code: 'EAGENT' }, 'a missing file');
  chmodSync(dir, 0o777);
  await t.rejects(attachAgent(w.pid, { allowInject: true, library: notElf }), { code: 'EACCES' }, 'a directory anyone could swap the library in');
  t.equal(readStatus(w.pid)?.TracerPid, '0');
});

/** A stand-in for gdb: a shell script that gets the same environment, cwd and fd 3. */
function fakeGdb(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

t.test('a gdb that hangs and ignores SIGTERM is killed: cancel, SIGTERM, SIGKILL', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-attach-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const hanging = fakeGdb(dir, 'gdb-hangs', "trap '' TERM\nexec sleep 60");
  const w = await start(['steady', '10', '5', '0']);
  const started = Date.now();
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 300); // after the deadline: the first cut stands
  const error = await attachAgent(w.pid, { allowInject: true, injector: 'gdb', gdbPath: hanging, timeoutMs: 50, signal: controller.signal }).catch((e: unknown) => e);
  t.match(error, { code: 'ETIMEDOUT', details: { injectorKilled: true } });
  // 50 ms, the cancel grace (4 x 200 ms calls + 2 s) and 2 s after SIGTERM.
  t.ok(Date.now() - started < 10_000, `bounded: ${Date.now() - started} ms`);
  t.equal(runsFree(w.pid), true);
});

t.test('whatever gdb reports or does, the outcome has a code and the target runs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-attach-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cases: Array<[string, string, Record<string, unknown>]> = [
    ['refused by ptrace', `echo 'not json' >&3\necho '{"stage":"error","code":"attach","message":"gdb could not attach"}' >&3\necho 'ptrace: Operation not permitted.' >&2\nexit 1`, { code: 'EACCES', details: { step: 'attach' } }],
    ['a failing step', `echo '{"stage":"attached"}' >&3\necho '{"stage":"error","code":"gdb","message":"boom"}' >&3\necho '{"stage":"detached"}' >&3`, { code: 'EAGENT', details: { step: 'gdb' } }],
    ['dead at once, no log', 'rm -f gdb.log\nexit 1', { code: 'EAGENT', details: { stages: [] } }],
    // What a gdb killed at the wrong moment can do: leave the process in group stop.
    ['died leaving the target stopped', 'kill -STOP $ALLOCSCOPE_ATTACH_PID\nexit 1', { code: 'EAGENT', details: { resumedTarget: true } }],
    ['"loaded" but no agent socket', `echo '{"stage":"loaded","how":"x"}' >&3\necho '{"stage":"detached"}' >&3`, { code: 'EAGENT' }],
  ];
  const w = await start(['steady', '10', '5', '0']);
  for (const [label, body, expected] of cases) {
    const gdbPath = fakeGdb(dir, label.replace(/\W+/g, '-'), body);
    const error = await attachAgent(w.pid, { allowInject: true, injector: 'gdb', gdbPath }).catch((e: unknown) => e);
    t.match(error, expected, label);
    t.equal(runsFree(w.pid), true, `${label}: the target runs`);
  }
  const slow = fakeGdb(dir, 'gdb-loads-then-lingers', `echo '{"stage":"loaded","how":"x"}' >&3\necho '{"stage":"detached"}' >&3\nsleep 1`);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 200);
  await t.rejects(attachAgent(w.pid, { allowInject: true, injector: 'gdb', gdbPath: slow, signal: controller.signal }), { code: 'ECANCELED', details: { loaded: true } }, 'cancelled after the load: said so');
  const killer = fakeGdb(dir, 'gdb-kills', 'kill -KILL $ALLOCSCOPE_ATTACH_PID\necho \'{"stage":"detached"}\' >&3');
  await t.rejects(attachAgent(w.pid, { allowInject: true, injector: 'gdb', gdbPath: killer }), { code: 'EAGENT' }, 'a target that died meanwhile is reported');
});

t.test('no gdb: EUNSUPPORTED before anything happens', async (t) => {
  const w = await start(['steady', '10', '5', '0']);
  await t.rejects(attachAgent(w.pid, { allowInject: true, injector: 'gdb', gdbPath: '/nonexistent/gdb' }), { code: 'EUNSUPPORTED' });
  t.equal(runsFree(w.pid), true);
});

t.test('ptrace: the borrowed thread goes on exactly as it was (registers, vector state, red zone, flags, errno, a sleep)', async (t) => {
  // registers: a loop that checks r8-r15, ymm0-14, its red zone and DF every turn, borrowed in
  // its own code; sleep: one clock_nanosleep, borrowed while blocked in it: it must be restarted
  // for the time left, not cut short (EINTR) or lengthened from scratch.
  const modes = [['registers', 3, /^running its own code \(inject_target\)$/], ['sleep', 1500, /^blocked in clock_nanosleep$/], ['malloc', 2, /^running its own code \(inject_target\)$|^blocked in/]] as const;
  for (const [mode, n, safe] of modes.filter(([mode]) => mode !== 'registers' || REGISTER_CHECK)) {
    const target = await startInjectTarget(mode, n);
    t.teardown(() => target.child.kill('SIGKILL'));
    await sleep(300);
    const started = Date.now();
    const result = await attachAgent(target.pid, { allowInject: true, timeoutMs: 30_000 });
    t.match(result.safePoint, safe, `${mode}: ${result.safePoint}`);
    t.equal(await target.ended, 0, `${mode}: ended cleanly: ${target.printed().trim().split('\n').pop()}`);
    if (mode === 'sleep') t.ok(Date.now() - started < 1500, 'the sleep was not started again from scratch');
  }
});

t.test('ptrace: no thread reaches a safe point (blocked in read, which the loader also does): nothing injected', async (t) => {
  const cat = spawn('cat', [], { stdio: ['pipe', 'ignore', 'ignore'] });
  t.teardown(() => cat.kill('SIGKILL'));
  await sleep(100);
  const pid = cat.pid as number;
  const error = await attachAgent(pid, { allowInject: true, timeoutMs: 2000 }).catch((e: unknown) => e);
  t.match(error, { code: 'ETIMEDOUT', details: { step: 'no-safe-point', injector: 'ptrace' } });
  t.equal(runsFree(pid), true, 'cat runs on, untraced');
  t.equal(readFileSync(`/proc/${pid}/maps`, 'utf8').includes('liballocscope_agent'), false, 'nothing was loaded');
  cat.stdin.end('still reading\n');
  t.equal(await new Promise((resolve) => cat.once('exit', resolve)), 0, 'and its read goes on: cat ends normally at EOF');
});

t.test('ptrace: an abort while the injector holds a stopped thread: ECANCELED, the thread resumes as it was', async (t) => {
  // The test hook parks the injector right after it chose (and holds) a thread; the abort's EOF
  // goes unheard, so it ends the hard way: SIGTERM after the grace, the kernel detaches.
  const target = await startInjectTarget('sleep', 4000);
  t.teardown(() => target.child.kill('SIGKILL'));
  process.env.ALLOCSCOPE_INJECT_PAUSE_AT = 'safe-point';
  t.teardown(() => delete process.env.ALLOCSCOPE_INJECT_PAUSE_AT);
  const controller = new AbortController();
  const attach = attachAgent(target.pid, { allowInject: true, timeoutMs: 1000, signal: controller.signal }).catch((e: unknown) => e);
  t.ok(await waitFor(() => processState(target.pid) === 't', 5000), 'the injector holds the thread');
  controller.abort();
  t.match(await attach, { code: 'ECANCELED', details: { injectorKilled: true, stages: ['attached', 'symbols', 'safe-point', 'paused'] } });
  delete process.env.ALLOCSCOPE_INJECT_PAUSE_AT;
  t.equal(runsFree(target.pid), true, 'running, untraced');
  t.equal(readFileSync(`/proc/${target.pid}/maps`, 'utf8').includes('liballocscope_agent'), false, 'nothing was loaded');
  t.equal(await target.ended, 0, `its sleep was restarted and ended normally: ${target.printed().trim().split('\n').pop()}`);
});
