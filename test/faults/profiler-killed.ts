/**
 * Fault: the profiler is SIGKILLed mid-request (profile-pid sampling an agent every 10 ms) and
 * mid-attach (at every step of the ptrace injector, and while gdb holds the target). The target
 * must live on, not stopped (state not T/t, no tracer left), and keep serving: another client's
 * snapshot request to its agent succeeds, and an nginx under the agent answers HTTP.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { request } from 'node:http';
import { agentLibraryPath, agentRequest, agentSocketExists, agentSocketPath, readAgentSnapshot } from '../../lib/targets/agent';
import { readStatus } from '../../lib/targets/attach-preflight';
import { type Cli, MAIN, PROFILE_PID, runsFree, seededRandom, startCli } from '../helpers/faults';
import { REGISTER_CHECK, startInjectTarget } from '../helpers/inject-target';
import { nginxSkip, startNginx } from '../helpers/nginx';
import { sleep, startWorkload, waitFor, type Workload } from '../helpers/workload';

const SEED = 6062026;
const random = seededRandom(SEED);
const running: Workload[] = [];
const orphans: number[] = [];
t.teardown(() => {
  running.forEach((w) => w.stop());
  // A gdb that outlived its CLI (its own session) is ours to end, by pid.
  for (const pid of orphans) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});
t.comment(`kill points seeded with ${SEED}`);

function httpGet(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('HTTP request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** CPU ticks (utime + stime) of a process: it keeps working when they keep growing. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

for (let i = 0; i < 3; i++) {
  const afterMs = Math.round(100 + random() * 900);
  t.test(`profile-pid killed ${afterMs} ms into sampling an agent every 10 ms: the agent serves the next client`, async (t) => {
    // A single-threaded glibc host's agent refuses stats-text (it would malloc while the host
    // runs lock-free); this one lets it, so the killed client below waits on a large answer.
    const w = await startWorkload(['leak', '4096', '5', '0'], { env: { ALLOCSCOPE_AGENT_SINGLE_THREADED: '0' } });
    running.push(w);
    t.ok(await waitFor(() => agentSocketExists(w.pid), 2000), 'the agent is up');
    const cli = startCli([PROFILE_PID, String(w.pid), '--interval', '10ms', '--duration', '60s', '--quiet'], 45_000);
    await sleep(afterMs + 300); // node's start, then the kill point
    cli.child.kill('SIGKILL');
    t.equal((await cli.exited).signal, 'SIGKILL');
    t.equal(runsFree(w.pid), true, 'the target runs freely');
    const snapshot = await readAgentSnapshot(w.pid);
    t.equal(snapshot.level, 'agent', 'another client\'s snapshot request is answered');
    // A client killed between its request and the answer (a large answer: jemalloc/glibc stats text).
    const reader = spawn(process.execPath, ['-e', `require(${JSON.stringify(MAIN.replace(/cli[/\\]main\.js$/, 'targets/agent.js'))}).agentRequest(${w.pid}, { op: 'stats-text' }).then(() => setInterval(() => {}, 1000))`], { stdio: 'ignore' });
    await sleep(Math.round(random() * 50));
    reader.kill('SIGKILL');
    await new Promise((resolve) => reader.once('exit', resolve));
    const info = await agentRequest(w.pid, { op: 'info' });
    t.equal(info.ok, true, 'and after a client killed mid-answer too');
    t.equal(runsFree(w.pid), true);
  });
}

t.test('profile-pid --children killed mid-sampling an nginx under the agent: HTTP still answered', { skip: nginxSkip() }, async (t) => {
  const server = await startNginx({ ...process.env, LD_PRELOAD: agentLibraryPath() }, 2);
  t.teardown(() => server.stop());
  t.equal(await httpGet(server.port), 200, 'nginx answers before');
  const cli = startCli([PROFILE_PID, String(server.master), '--children', '--interval', '10ms', '--duration', '60s', '--quiet'], 45_000);
  await sleep(Math.round(400 + random() * 800));
  cli.child.kill('SIGKILL');
  t.equal((await cli.exited).signal, 'SIGKILL');
  for (const pid of [server.master, ...server.workers()]) t.equal(runsFree(pid), true, `nginx ${pid} runs freely`);
  for (let r = 0; r < 20; r++) t.equal(await httpGet(server.port), 200, `request ${r + 1} after the kill`);
  for (const worker of server.workers()) t.equal((await readAgentSnapshot(worker)).level, 'agent', `worker ${worker}'s agent answers`);
});

/** The gdb tracing `pid`, once there is one. */
async function tracerOf(pid: number, ms: number): Promise<number | null> {
  let tracer = 0;
  await waitFor(() => {
    tracer = Number(readStatus(pid)?.TracerPid ?? 0);
    return tracer > 0;
  }, ms);
  return tracer > 0 ? tracer : null;
}

/** The injector the attach CLI started (its child), once there is one; null if the CLI ended first. */
async function injectorOf(cli: Cli, ms: number): Promise<number | null> {
  const pid = cli.child.pid as number;
  let found: number | null = null;
  await waitFor(() => {
    if (cli.child.exitCode !== null || cli.child.signalCode !== null) return true;
    try {
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      found = children.find((pid) => basename(readlinkSync(`/proc/${pid}/exe`)) === 'allocscope_inject') ?? null;
    } catch {
      found = null;
    }
    return found !== null;
  }, ms);
  return found;
}

/** `allocscope attach PID` with the injector's test hook parking it at `at`; null (and a failure) if it never started. */
async function attachParkedAt(t: tap.Test, pid: number, at: string): Promise<{ cli: Cli; injector: number } | null> {
  const cli = startCli([MAIN, 'attach', String(pid), '--allow-inject', '--json', '--timeout', '30000'], 45_000, { ...process.env, ALLOCSCOPE_INJECT_PAUSE_AT: at });
  const injector = await injectorOf(cli, 20_000);
  if (injector === null) {
    t.fail('the injector never started', { stderr: cli.stderr() });
    return null;
  }
  orphans.push(injector); // ours to end by pid, whatever the test does
  return { cli, injector };
}

/** The system call a process sleeps in (first field of /proc/PID/syscall), or null. */
function syscallOf(pid: number): number | null {
  try {
    return Number(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

// The ptrace injector (the default) parked by its test hook at each step, then SIGKILLed with its
// CLI: the kernel detaches. Up to 'cave-written' the target never ran anything of ours; at
// 'redirected' its borrowed thread runs the injected call on its own and loads the agent.
// inject_target checks its own state: 'sleep' must sleep its full time (a restarted call), and
// 'registers' must see every register, vector register, its red zone and flags unchanged.
for (const at of ['attached', 'safe-point', 'cave-written', 'redirected'] as const) {
  for (const mode of ['sleep', 'registers'] as const) {
    const skip = mode === 'registers' && !REGISTER_CHECK ? 'inject_target registers needs x86_64 with AVX2' : false;
    t.test(`attach (ptrace) SIGKILLed with its injector at "${at}", target ${mode}: it lives on, state intact`, { skip }, async (t) => {
      const target = await startInjectTarget(mode, mode === 'sleep' ? 2500 : 3);
      t.teardown(() => target.child.kill('SIGKILL'));
      const pid = target.pid;
      const parked = await attachParkedAt(t, pid, at);
      if (parked === null) return;
      const { cli, injector } = parked;
      // Parked: asleep in clock_nanosleep (sleep(3)), holding the chosen thread from 'safe-point' on.
      const holds = at !== 'attached';
      t.ok(await waitFor(() => syscallOf(injector) === 230 && (readStatus(pid)?.TracerPid !== '0') === holds, 20_000), `the injector is parked at "${at}"`);
      cli.child.kill('SIGKILL');
      process.kill(injector, 'SIGKILL');
      t.equal((await cli.exited).signal, 'SIGKILL');
      t.ok(await waitFor(() => readStatus(pid)?.TracerPid === '0', 5000), 'no tracer left');
      await sleep(100);
      t.equal(runsFree(pid), true, 'the target is not stopped');
      const loaded = () => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('liballocscope_agent');
      if (at === 'redirected') {
        t.ok(await waitFor(loaded, 5000), 'the redirected thread loaded the agent by itself');
        t.ok(await waitFor(() => agentSocketExists(pid), 5000), 'which serves');
        t.equal((await readAgentSnapshot(pid)).level, 'agent');
      } else {
        t.equal(loaded(), false, 'nothing was loaded');
      }
      t.equal(await target.ended, 0, `and it ends as it would have: ${target.printed().trim().split('\n').pop()}`);
      rmSync(agentSocketPath(pid), { force: true });
    });
  }
}

t.test('attach (ptrace) SIGKILLed with its injector while it holds an nginx worker: HTTP still answered', { skip: nginxSkip() }, async (t) => {
  const server = await startNginx({ ...process.env }, 1);
  t.teardown(() => server.stop());
  t.equal(await httpGet(server.port), 200, 'nginx answers before');
  for (const at of ['safe-point', 'redirected'] as const) {
    const [worker] = server.workers();
    const parked = await attachParkedAt(t, worker, at);
    if (parked === null) return;
    const { cli, injector } = parked;
    t.ok(await waitFor(() => syscallOf(injector) === 230 && readStatus(worker)?.TracerPid === String(injector), 20_000), `parked at "${at}", holding the worker (asleep in epoll_wait)`);
    cli.child.kill('SIGKILL');
    process.kill(injector, 'SIGKILL');
    await cli.exited;
    t.ok(await waitFor(() => readStatus(worker)?.TracerPid === '0', 5000), 'no tracer left');
    t.equal(runsFree(worker), true, `worker ${worker} runs freely`);
    for (let r = 0; r < 10; r++) t.equal(await httpGet(server.port), 200, `request ${r + 1} after the kill at "${at}"`);
    t.same(server.workers(), [worker], 'the same worker serves (it did not die and get replaced)');
  }
  t.ok(await waitFor(() => agentSocketExists(server.workers()[0]), 5000), 'the worker redirected before the kill loaded the agent by itself');
  t.equal((await readAgentSnapshot(server.workers()[0])).level, 'agent');
});

t.test('attach (ptrace) and its injector SIGKILLed at seeded random points: the target lives on', async (t) => {
  // No hook: a target busy inside malloc (its own code only a sliver of the time) keeps the
  // injector sampling for ~30-1200 ms, and the kill lands somewhere in that (or after: then the
  // attach simply finished).
  let landed = 0;
  for (let attempt = 0; attempt < 6; attempt++) {
    const w = await startWorkload(['steady', '100000', '0', '0'], { agent: false });
    running.push(w);
    const cli = startCli([MAIN, 'attach', String(w.pid), '--allow-inject', '--json', '--timeout', '30000'], 45_000);
    const injector = await injectorOf(cli, 20_000);
    const afterMs = Math.round(random() * 40);
    await sleep(afterMs);
    cli.child.kill('SIGKILL');
    if (injector !== null) {
      orphans.push(injector);
      try {
        process.kill(injector, 'SIGKILL');
        landed++;
      } catch {
        /* it had finished */
      }
    }
    await cli.exited;
    t.ok(await waitFor(() => readStatus(w.pid)?.TracerPid === '0', 5000), `killed ${afterMs} ms in: no tracer left`);
    await sleep(100);
    t.equal(runsFree(w.pid), true, 'the target is not stopped');
    const before = cpuTicks(w.pid);
    t.ok(await waitFor(() => cpuTicks(w.pid) > before, 5000), 'and keeps working (its CPU time grows)');
    w.stop();
  }
  t.ok(landed > 0, `${landed} of 6 kills landed while the injector ran`);
});

for (const [label, killGdbToo] of [
  ['the CLI alone (gdb, in its own session, finishes or detaches)', false],
  ['the CLI and gdb together (as a cgroup kill would)', true],
  ['the CLI and gdb together, other seeded points', true],
] as const) {
  // The gdb injector's known hazard (why ptrace is the default): gdb itself SIGKILLed while it
  // runs the injected dlopen() as an inferior call leaves the target's registers mid-call, with
  // the return address on gdb's breakpoint; once the kernel detaches, the target can die there
  // (seen in CI: the target was gone). Killing only allocscope's CLI is safe (gdb, in its own
  // session, finishes or detaches). These runs stay, as todo, to show it on every run.
  const todo = killGdbToo ? 'gdb SIGKILLed mid-injection can leave the target to die at its return breakpoint' : false;
  t.test(`attach --injector gdb killed while gdb holds the target: ${label}`, { todo }, async (t) => {
    // The attach holds the target for a few hundred ms at most: a kill point is random within the
    // first 25 ms after gdb was seen attached (it holds a C target ~30-60 ms), and a try whose
    // attach finished first is tried again.
    let landed = 0;
    for (let attempt = 0; attempt < 10 && landed < 2; attempt++) {
      const w = await startWorkload(['leak', '4096', '2', '0'], { agent: false });
      running.push(w);
      const cli = startCli([MAIN, 'attach', String(w.pid), '--allow-inject', '--injector', 'gdb', '--json', '--timeout', '30000'], 45_000);
      const gdb = await tracerOf(w.pid, 20_000);
      if (gdb === null) {
        t.fail('gdb never attached', { stderr: cli.stderr() });
        return;
      }
      orphans.push(gdb);
      const afterMs = Math.round(random() * 25);
      await sleep(afterMs);
      if (readStatus(w.pid)?.TracerPid !== String(gdb)) {
        await cli.exited;
        t.comment(`attempt ${attempt + 1}: the attach ended within ${afterMs} ms; trying another point`);
        w.stop();
        continue;
      }
      landed++;
      // attach's temporary directory is gdb's cwd; a killed CLI cannot remove it, so the test does.
      let gdbDir: string | null = null;
      try {
        gdbDir = readlinkSync(`/proc/${gdb}/cwd`);
      } catch {
        /* gdb already gone */
      }
      cli.child.kill('SIGKILL');
      if (killGdbToo) process.kill(gdb, 'SIGKILL');
      t.equal((await cli.exited).signal, 'SIGKILL', `killed ${afterMs} ms after gdb attached, while it held the target`);
      // However gdb ended (it carried on alone, or the kernel detached it), the tracer goes away.
      t.ok(await waitFor(() => readStatus(w.pid)?.TracerPid === '0', 30_000), 'no tracer left');
      await sleep(300); // a SIGSTOP left pending by a killed gdb lands within moments
      t.equal(runsFree(w.pid), true, 'the target is not stopped');
      const before = cpuTicks(w.pid);
      t.ok(await waitFor(() => cpuTicks(w.pid) > before, 5000), 'and keeps working (its CPU time grows)');
      if (gdbDir !== null && basename(gdbDir).startsWith('allocscope-attach-')) rmSync(gdbDir, { recursive: true, force: true });
      w.stop();
    }
    t.ok(landed > 0, `${landed} kill(s) landed while gdb held the target`);
  });
}
