/**
 * `allocscope run [--allocator NAME] [--env K=V]... [profile flags] -- CMD ARGS`: starts CMD with
 * the chosen allocator library and the agent preloaded (its children inherit both), profiles it
 * like profile-pid, and passes signals through. CMD runs from an argv array, never a shell string.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { ALLOCATOR_LIBRARIES } from '../allocators/libraries';
import type { AllocatorName } from '../snapshot';
import { agentLibraryPath, agentSocketExists } from '../targets/agent';
import { parseArgs, UsageError } from './args';
import { parseDuration } from './duration';
import { profilePid, summaryText } from './profile-pid';

const ALLOCATORS: readonly AllocatorName[] = ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc'];
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];

export interface RunPlan {
  command: string;
  args: string[];
  allocator: AllocatorName;
  env: NodeJS.ProcessEnv;
}

/** The environment and argv for CMD; throws UsageError on a bad allocator or env entry. */
export function planRun(allocator: string, envPairs: readonly string[], command: readonly string[], base: NodeJS.ProcessEnv = process.env): RunPlan {
  if (!ALLOCATORS.includes(allocator as AllocatorName)) {
    throw new UsageError(`--allocator must be one of ${ALLOCATORS.join(', ')}; got ${JSON.stringify(allocator)}`);
  }
  if (command.length === 0) throw new UsageError('give the command after --, e.g. allocscope run -- ./server --port 8080');
  const env: NodeJS.ProcessEnv = { ...base };
  for (const pair of envPairs) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? '' : pair.slice(0, eq);
    if (!ENV_KEY.test(key)) throw new UsageError(`--env takes KEY=VALUE with KEY made of letters, digits and _ (not starting with a digit); got ${JSON.stringify(pair)}`);
    if (key === 'LD_PRELOAD') throw new UsageError('--env LD_PRELOAD is set by allocscope run itself (the allocator and the agent); add libraries with the command instead');
    env[key] = pair.slice(eq + 1);
  }
  const library = ALLOCATOR_LIBRARIES[allocator as AllocatorName];
  if (library !== undefined && !existsSync(library.path)) {
    throw new UsageError(`${allocator} is not installed (${library.path}); apt-get install ${library.debianPackage}`);
  }
  // The allocator first, so it interposes malloc; then the agent; then whatever was preloaded before.
  env.LD_PRELOAD = [library?.path, agentLibraryPath(), base.LD_PRELOAD].filter((p): p is string => p !== undefined && p !== '').join(':');
  return { command: command[0], args: command.slice(1), allocator: allocator as AllocatorName, env };
}

export async function runCommand(argv: readonly string[], out: (t: string) => void, err: (t: string) => void): Promise<number> {
  const { flags, rest } = parseArgs(argv, {
    allocator: 'string',
    env: 'strings',
    out: 'string',
    interval: 'string',
    duration: 'string',
    json: 'boolean',
    quiet: 'boolean',
  });
  const plan = planRun(String(flags.allocator ?? 'glibc'), (flags.env as string[] | undefined) ?? [], rest);
  const intervalMs = flags.interval === undefined ? 1000 : parseDuration('interval', String(flags.interval), 10, 3_600_000);
  const durationMs = flags.duration === undefined ? null : parseDuration('duration', String(flags.duration), 10, 30 * 24 * 3_600_000);
  const child = spawn(plan.command, plan.args, { env: plan.env, stdio: 'inherit' });
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', resolve);
  });
  if (spawned !== null) {
    err(`allocscope run: cannot start ${plan.command}: ${spawned.message}`);
    return 127;
  }
  const pid = child.pid as number;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = { requested: false };
  let childDone = false;
  void exited.then(() => {
    childDone = true;
    stop.requested = true;
  });
  const forward = (signal: NodeJS.Signals) => () => {
    if (!childDone) child.kill(signal);
  };
  const handlers = FORWARDED.map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  try {
    // The agent starts with the program; give it a moment so the first sample is at agent level.
    for (let waited = 0; waited < 2000 && !childDone && !agentSocketExists(pid); waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    let writeFailed = false;
    if (!childDone) {
      const result = await profilePid(
        { pid, intervalMs, durationMs, samples: null, out: (flags.out as string | undefined) ?? null, json: flags.json === true, children: false, quiet: flags.quiet === true },
        { out, err, tty: process.stdout.isTTY === true && flags.json !== true },
        stop,
      );
      if (childDone) result.endedBy = 'target-exited';
      out(flags.json === true ? JSON.stringify({ allocator: plan.allocator, command: [plan.command, ...plan.args], ...result }, null, 2) : `\n${summaryText(result)}`);
      if (result.writeError !== null) {
        err(`allocscope run: ${result.writeError} [EIO]`);
        writeFailed = true;
      }
    }
    // The profiling window ended first: the command is ours to stop, and that is a normal end. A
    // failed --out ends the window too (run promises a profile of the whole command, README
    // "Reliability"), and the exit code says so.
    const endedByUs = !childDone && (durationMs !== null || writeFailed);
    if (endedByUs) child.kill('SIGTERM');
    const { code, signal } = await exited;
    if (writeFailed) return 1;
    if (endedByUs && signal === 'SIGTERM') return 0;
    return code ?? (signal !== null ? 128 + constants.signals[signal] : 1);
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}
