/**
 * Fault: the target is SIGKILLed at a random point (seeded) while profile-pid, run or compare
 * samples it. The --out NDJSON must hold whole lines only, one per sample taken, and the summary
 * must say the target went away (profile-pid exit 0, run 128+9, compare's summary.json names it).
 */
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoServerPath } from '../../lib/cli/demo';
import { agentSocketPath } from '../../lib/targets/agent';
import { checkNdjson, MAIN, PROFILE_PID, seededRandom, STACK_TRACE, startCli } from '../helpers/faults';
import { sleep, startWorkload, waitFor, WORKLOAD, type Workload } from '../helpers/workload';

const SEED = 20261127;
const random = seededRandom(SEED);
const dir = mkdtempSync(join(tmpdir(), 'allocscope-killed-'));
const running: Workload[] = [];
t.teardown(() => {
  running.forEach((w) => w.stop());
  rmSync(dir, { recursive: true, force: true });
});
t.comment(`kill points seeded with ${SEED}`);

/** Lines of a file, 0 when it does not exist yet. */
const linesIn = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').length - 1 : 0);

for (let i = 0; i < 4; i++) {
  // 10 ms sampling: a kill has a fair chance to land while a request to the agent is in flight.
  const afterMs = Math.round(50 + random() * 1200);
  t.test(`profile-pid: the target killed ${afterMs} ms after the first sample`, async (t) => {
    const w = await startWorkload(['leak', '4096', '5', '0'], i % 2 === 0 ? {} : { allocator: 'jemalloc' });
    running.push(w);
    const out = join(dir, `profile-${i}.ndjson`);
    const cli = startCli([PROFILE_PID, String(w.pid), '--interval', '10ms', '--duration', '60s', '--out', out], 45_000);
    t.ok(await waitFor(() => linesIn(out) > 0, 20_000), 'sampling started');
    await sleep(afterMs);
    w.child.kill('SIGKILL');
    const { code, signal } = await cli.exited;
    t.equal(signal, null, 'profile-pid ended by itself, before the test\'s bound');
    t.equal(code, 0, cli.stderr());
    t.notMatch(cli.stderr(), STACK_TRACE);
    const file = checkNdjson(out);
    t.same(file.broken, [], 'every line parses');
    t.equal(file.endsWhole, true, 'no partial last line');
    t.ok(file.samples.every((s) => s.pid === w.pid));
    const summary = cli.stdout();
    t.match(summary, /ended because the target exited; .*profile-\d\.ndjson holds every sample taken/);
    t.equal(Number(/: (\d+) samples at level/.exec(summary)?.[1]), file.samples.length, `the summary counts the ${file.samples.length} samples of the file`);
  });
}

for (let i = 0; i < 3; i++) {
  const afterMs = Math.round(50 + random() * 1200);
  t.test(`allocscope run: the command killed ${afterMs} ms after the first sample`, async (t) => {
    const out = join(dir, `run-${i}.ndjson`);
    const cli = startCli([MAIN, 'run', '--interval', '10ms', '--out', out, '--', WORKLOAD, 'leak', '4096', '5', '0'], 45_000);
    t.ok(await waitFor(() => /ready \d+/.test(cli.stdout()) && linesIn(out) > 0, 20_000), 'the command runs and is sampled');
    const pid = Number(/ready (\d+)/.exec(cli.stdout())?.[1]);
    await sleep(afterMs);
    process.kill(pid, 'SIGKILL');
    const { code, signal } = await cli.exited;
    rmSync(agentSocketPath(pid), { force: true });
    t.equal(signal, null);
    t.equal(code, 128 + 9, 'run exits as its command did (128 + SIGKILL)');
    t.notMatch(cli.stderr(), STACK_TRACE);
    const file = checkNdjson(out);
    t.same(file.broken, []);
    t.equal(file.endsWhole, true);
    t.ok(file.samples.length > 0 && file.samples.every((s) => s.pid === pid && s.level === 'agent'));
    t.match(cli.stdout(), /ended because the target exited/);
    t.equal(Number(/: (\d+) samples at level/.exec(cli.stdout())?.[1]), file.samples.length);
  });
}

for (let i = 0; i < 2; i++) {
  const afterMs = Math.round(100 + random() * 1500);
  t.test(`compare: the server killed ${afterMs} ms into its load`, async (t) => {
    const out = join(dir, `compare-${i}`);
    const cli = startCli(
      [MAIN, 'compare', '--allocators', 'glibc', '--requests', '1000000', '--step', '50', '--concurrency', '2', '--duration', '30s', '--out', out, '--quiet', '--', demoServerPath(), '--port', '{port}', '--threads', '1'],
      50_000,
    );
    const samplesFile = () => (existsSync(out) ? readdirSync(out).find((f) => f.endsWith('.ndjson')) : undefined);
    t.ok(await waitFor(() => samplesFile() !== undefined && linesIn(join(out, samplesFile() as string)) > 1, 30_000), 'the load runs and is sampled');
    const children = readFileSync(`/proc/${cli.child.pid}/task/${cli.child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    const server = children.find((pid) => existsSync(`/proc/${pid}/exe`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('demo_server'));
    t.ok(server !== undefined, 'found the server among compare\'s children');
    await sleep(afterMs);
    process.kill(server as number, 'SIGKILL');
    const { code, signal } = await cli.exited;
    t.equal(signal, null);
    t.equal(code, 1, 'exit 1: no run completed');
    t.notMatch(cli.stderr(), STACK_TRACE);
    const file = checkNdjson(join(out, samplesFile() as string));
    t.same(file.broken, []);
    t.equal(file.endsWhole, true);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    t.equal(summary.runs.length, 1);
    t.equal(summary.runs[0].status, 'failed');
    t.equal(summary.runs[0].error.code, 'ESRCH');
    t.match(summary.runs[0].error.message, /the server ended \(.*SIGKILL.*\) during the load/);
    t.equal(summary.runs[0].requestsAtSample.length, file.samples.length, 'summary.json and the NDJSON agree on the samples');
  });
}
