/**
 * The ptrace injector (native/inject/inject.c) under ASan+UBSan: it parses /proc/PID/maps and the
 * ELF headers of every library a target maps, so a crafted mapping must not make it misbehave.
 * Run from scripts/asan-test on the instrumented build (npx node-gyp rebuild --asan=1): the
 * injector and inject_target both link libasan there. Each run loads the agent into a fresh
 * inject_target (its own checks: registers, sleep restarted, malloc loop) and must exit 0 with no
 * sanitizer report; then the injector's refusals run too (bad arguments, a pid that is gone, a
 * library dlopen rejects).
 *
 * On the normal build (npm test) it runs as well, as a plain check of the injector's own exits.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentLibraryPath, agentSocketPath } from '../../lib/targets/agent';
import { injectorPath } from '../../lib/targets/attach';
import { REGISTER_CHECK, startInjectTarget } from '../../test/helpers/inject-target';

const SANITIZER_REPORT = /ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer/;

/** Runs the injector with fd 3 a pipe; its stages, its stderr and its exit code. */
function inject(args: string[]): { code: number | null; stages: Array<Record<string, unknown>>; stderr: string } {
  const run = spawnSync(injectorPath(), args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 30_000 });
  const stages = String(run.output[3] ?? '')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code: run.status, stages, stderr: String(run.stderr ?? '') };
}

t.test('the injector loads the agent into each kind of target, with no sanitizer report', async (t) => {
  const modes = [['sleep', 1500], ['registers', 2], ['malloc', 2]] as const;
  for (const [mode, n] of modes.filter(([mode]) => mode !== 'registers' || REGISTER_CHECK)) {
    const target = await startInjectTarget(mode, n);
    t.teardown(() => target.child.kill('SIGKILL'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const run = inject([String(target.pid), agentLibraryPath(), '5000', '3000']);
    t.equal(run.code, 0, `${mode}: exit 0 (${JSON.stringify(run.stages.at(-1))})`);
    t.equal(run.stages.at(-1)?.stage, 'loaded');
    t.notMatch(run.stderr, SANITIZER_REPORT, `${mode}: no sanitizer report from the injector`);
    t.equal(await target.ended, 0, `${mode}: the target's own checks held: ${target.printed().trim().split('\n').pop()}`);
    t.notMatch(target.printed(), SANITIZER_REPORT, `${mode}: none from the target either`);
    rmSync(agentSocketPath(target.pid), { force: true });
  }
});

t.test("the injector's refusals: exit codes and stages, no sanitizer report", async (t) => {
  for (const args of [[], ['0', '/x.so', '1', '1'], ['1', 'relative.so', '1', '1'], ['1', '/x.so', '-5', '1']]) {
    const run = inject(args);
    t.equal(run.code, 2, `usage: ${args.join(' ')}`);
    t.match(run.stages[0], { stage: 'error', code: 'usage' });
    t.notMatch(run.stderr, SANITIZER_REPORT);
  }
  const gone = inject(['4194305', agentLibraryPath(), '100', '100']);
  t.equal(gone.code, 1);
  t.match(gone.stages[0], { stage: 'error', code: 'attach' }, 'a pid that does not exist');
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-injector-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const notElf = join(dir, 'libnot-elf.so');
  writeFileSync(notElf, 'not an ELF file\n');
  const target = await startInjectTarget('sleep', 2000);
  t.teardown(() => target.child.kill('SIGKILL'));
  const rejected = inject([String(target.pid), notElf, '5000', '3000']);
  t.equal(rejected.code, 1);
  t.match(rejected.stages.at(-1), { stage: 'error', code: 'dlopen', message: /invalid ELF header|file too short/ }, "dlopen's reason, read from the target");
  t.notMatch(rejected.stderr, SANITIZER_REPORT);
  t.equal(readFileSync(`/proc/${target.pid}/maps`, 'utf8').includes('libnot-elf'), false);
});
