import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import schema from '../../schema/snapshot.v1.json';
import { EXIT_NO_CONSENT } from '../../lib/cli/attach';
import { main } from '../../lib/cli/main';
import { processState, readStatus } from '../../lib/targets/attach-preflight';
import { startWorkload, waitFor, WORKLOAD, type Workload } from '../helpers/workload';

const bin = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const running: Workload[] = [];
t.teardown(() => running.forEach((w) => w.stop()));

async function start(args: string[]): Promise<Workload> {
  const workload = await startWorkload(args, { agent: false });
  running.push(workload);
  return workload;
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, (s) => (out += `${s}\n`), (s) => (err += `${s}\n`));
  return { code, out, err };
}

const runsFree = (pid: number) => {
  const state = processState(pid);
  return state !== null && !/^[TtZX]$/.test(state) && readStatus(pid)?.TracerPid === '0';
};
const hasAgent = (pid: number) => spawnSync('grep', ['-q', 'liballocscope_agent', `/proc/${pid}/maps`]).status === 0;

t.test('without --allow-inject: the risks, a non-zero exit, and nothing done', async (t) => {
  const w = await start(['steady', '10', '5', '0']);
  const refused = await run(['attach', String(w.pid)]);
  t.equal(refused.code, EXIT_NO_CONSENT);
  t.equal(refused.out, '');
  t.match(refused.err, /--allow-inject/);
  t.match(refused.err, /stops one thread at a time/);
  t.match(refused.err, /LD_PRELOAD/);
  t.equal(readStatus(w.pid)?.TracerPid, '0', 'gdb never ran');
  t.notOk(hasAgent(w.pid));
});

t.test('usage errors exit 2', async (t) => {
  for (const argv of [['attach'], ['attach', 'abc'], ['attach', '12', '34'], ['attach', '-5'], ['attach', '1', '--timeout', '0'], ['attach', '1', '--bogus'], ['attach', '1', '--injector', 'lldb'], ['attach', '1', '--debug-symbols']]) {
    t.equal((await run(argv)).code, 2, argv.join(' '));
  }
  t.match((await run(['help'])).out, /attach PID --allow-inject/);
});

t.test('--allow-inject --json: a schema-valid attached snapshot; the table form too', async (t) => {
  const w = await start(['leak', '65536', '10', '0']);
  const json = await run(['attach', String(w.pid), '--allow-inject', '--json', '--timeout', '30000']);
  t.equal(json.code, 0, json.err);
  const snapshot = JSON.parse(json.out);
  t.ok(new Ajv2020().validate(schema, snapshot));
  t.equal(snapshot.level, 'attached');
  t.equal(snapshot.pid, w.pid);
  t.match(json.err, /agent loaded into pid \d+ .*target stopped ~\d+ ms/);
  t.ok(runsFree(w.pid));
  const again = await run(['attach', String(w.pid), '--allow-inject']);
  t.equal(again.code, 0);
  t.match(again.out, /already runs an agent; nothing injected/);
  t.match(again.out, /malloc is glibc/);

  const fresh = await start(['leak', '4096', '10', '0']);
  const table = await run(['attach', String(fresh.pid), '--allow-inject', '--timeout', '30000']);
  t.equal(table.code, 0, table.err);
  t.match(table.out, /agent loaded into pid/);
  t.match(table.out, /totalOverhead/);
});

t.test('errors exit 1 with their code: a dead pid, a stopped process', async (t) => {
  const dead = await run(['attach', '4194305', '--allow-inject']);
  t.equal(dead.code, 1);
  t.match(dead.err, /\[ESRCH\]/);
  const w = await start(['steady', '10', '5', '0']);
  process.kill(w.pid, 'SIGSTOP');
  t.teardown(() => process.kill(w.pid, 'SIGCONT'));
  await waitFor(() => processState(w.pid) === 'T', 2000);
  const stopped = await run(['attach', String(w.pid), '--allow-inject']);
  t.equal(stopped.code, 1);
  t.match(stopped.err, /\[EINVAL\]/);
  t.equal(processState(w.pid), 'T', 'left as it was');
});

t.test('as nobody against a root process: EACCES, said so, and no escalation', { skip: process.getuid?.() !== 0 && !process.env.CI ? 'needs root to switch to nobody' : false }, async (t) => {
  const w = await start(['steady', '10', '5', '0']);
  const asNobody = spawnSync(process.execPath, [bin, 'attach', String(w.pid), '--allow-inject'], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 30_000 });
  t.equal(asNobody.status, 1, asNobody.stderr);
  t.match(asNobody.stderr, /\[EACCES\]/);
  t.match(asNobody.stderr, /CAP_SYS_PTRACE/);
  t.match(asNobody.stderr, /never raises its own privileges/);
  t.equal(readStatus(w.pid)?.TracerPid, '0', 'no gdb was started');
  t.notOk(hasAgent(w.pid));
  t.ok(runsFree(w.pid));
});

t.test('a signal during the attach (in process): the command undoes it and returns 128 + signo', async (t) => {
  const w = await start(['leak', '4096', '5', '0']);
  const pending = run(['attach', String(w.pid), '--allow-inject', '--injector', 'gdb', '--debug-symbols', '--timeout', '30000']);
  // Deliver to the command's own listener only (tap listens for real signals too).
  const handler = process.listeners('SIGINT').at(-1) as (signal: NodeJS.Signals) => void;
  t.ok(await waitFor(() => processState(w.pid) === 't', 20_000), 'gdb holds the target');
  handler('SIGINT');
  handler('SIGINT'); // a second Ctrl-C changes nothing: the undo is already under way
  const result = await pending;
  t.equal(result.code, 130);
  t.match(result.err, /\[ECANCELED\]/);
  t.equal(process.listeners('SIGINT').includes(handler), false, 'the listener is removed afterwards');
  t.ok(await waitFor(() => runsFree(w.pid), 1000), 'alive, running, untraced');
});

t.test("as nobody against nobody's own process: it works with no privilege at all", { skip: process.getuid?.() !== 0 && !process.env.CI ? 'needs root to switch to nobody' : false }, async (t) => {
  const target = spawn(WORKLOAD, ['leak', '4096', '10', '0'], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => target.kill('SIGKILL'));
  await new Promise((resolve) => target.stdout.once('data', resolve));
  const pid = target.pid as number;
  const asNobody = spawnSync(process.execPath, [bin, 'attach', String(pid), '--allow-inject', '--json'], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH } });
  t.equal(asNobody.status, 0, asNobody.stderr);
  t.equal(JSON.parse(asNobody.stdout).level, 'attached');
  t.match(asNobody.stderr, /agent loaded into pid/);
  t.ok(runsFree(pid));
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} to the CLI while gdb holds the target: gdb detaches, the target runs on`, async (t) => {
    const w = await start(['leak', '4096', '5', '0']);
    // --debug-symbols makes gdb hold the target for ~0.5 s, long enough to be caught at it.
    const cli = spawn(process.execPath, [bin, 'attach', String(w.pid), '--allow-inject', '--injector', 'gdb', '--debug-symbols', '--timeout', '30000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => cli.once('exit', (code, sig) => resolve({ code, signal: sig })));
    const caught = await waitFor(() => processState(w.pid) === 't', 20_000);
    cli.kill(signal);
    const { code, signal: killedBy } = await exited;
    t.ok(caught, 'gdb was holding the target (state t) when the signal came');
    t.equal(killedBy, null, 'the CLI handled the signal rather than dying of it');
    t.equal(code, signal === 'SIGINT' ? 130 : 143, stderr);
    t.match(stderr, /\[ECANCELED\]/);
    t.ok(await waitFor(() => runsFree(w.pid), 1000), 'alive, running, untraced');
  });
}

t.test('SIGTERM to the CLI while the ptrace injector holds a thread: it is undone, the target runs on', async (t) => {
  const w = await start(['leak', '4096', '5', '0']);
  // The injector's test hook parks it holding the chosen thread, deaf to the cancel: the CLI must
  // end it (SIGTERM after the grace; the kernel detaches) and still exit as the signal asks.
  const cli = spawn(process.execPath, [bin, 'attach', String(w.pid), '--allow-inject', '--timeout', '1000'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ALLOCSCOPE_INJECT_PAUSE_AT: 'safe-point' },
  });
  let stderr = '';
  cli.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => cli.once('exit', (code, sig) => resolve({ code, signal: sig })));
  t.ok(await waitFor(() => processState(w.pid) === 't', 20_000), 'the injector holds the thread');
  cli.kill('SIGTERM');
  const { code, signal } = await exited;
  t.equal(signal, null, 'the CLI handled the signal');
  t.equal(code, 143, stderr);
  t.match(stderr, /the ptrace injector is gone.*\[ECANCELED\]/);
  t.ok(await waitFor(() => runsFree(w.pid), 1000), 'alive, running, untraced');
  t.notOk(hasAgent(w.pid), 'nothing loaded');
});
