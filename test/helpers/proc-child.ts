/**
 * Real processes for the /proc readers' tests: long-lived targets, a pid that is certainly gone,
 * another user's process, and a reader without capabilities, to meet the kernel's permission
 * checks for real.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { scenarioResult } from './child';

export const NOBODY = 65534;

/** A child that lives until stopped. */
export interface Target {
  child: ChildProcess;
  pid: number;
  /** What it printed on stdout so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `command` and waits until it is running the program (not a half-exec'd fork): either
 * until it prints `readyLine` on stdout or, without one, until /proc shows the program asleep.
 */
export async function startTarget(command: string, args: readonly string[], options: SpawnOptions & { readyLine?: string } = {}): Promise<Target> {
  const { readyLine, ...spawnOptions } = options;
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], ...spawnOptions });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  let out = '';
  child.stdout?.on('data', (chunk) => (out += chunk));
  if (readyLine !== undefined) {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', () => {
        if (out.includes(readyLine)) resolve();
      });
      child.once('exit', (code, signal) => reject(new Error(`${command} exited (${code ?? signal}) before printing ${readyLine}:\n${out}`)));
    });
  } else {
    // Running the program, and asleep in it: past exec and past the loader's mapping of libraries.
    const name = command.split('/').pop()?.slice(0, 15);
    const settled = () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.startsWith(`${pid} (${name}) S `);
    };
    for (let i = 0; i < 500 && !settled(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return {
    child,
    pid,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    },
  };
}

/** The pid of a process that has exited and been reaped. */
export async function reapedPid(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  await once(child, 'exit');
  // libuv reaps on SIGCHLD before 'exit' is emitted: /proc/<pid> is gone now.
  return child.pid as number;
}

/**
 * Starts `sleep 60` as nobody: another user's process, which a reader without CAP_SYS_PTRACE may
 * see at the basic level only.
 */
export function startOtherUsersProcess(): Promise<Target> {
  return startTarget('sleep', ['60'], { uid: NOBODY, gid: NOBODY });
}

/**
 * Runs `scenario` of `testFile` as root with every capability dropped (setpriv, util-linux):
 * no CAP_SYS_PTRACE to read another uid's maps, environ or smaps, no CAP_DAC_OVERRIDE to read a
 * file its mode forbids. The uid stays 0, so the checkout is readable wherever CI clones it
 * (running as nobody would need every parent directory to be world-searchable). The child gets
 * tap's TypeScript loader only (not its process-info hooks) and a minimal environment.
 */
export function withoutCapabilities<T>(testFile: string, scenario: string, env: Record<string, string> = {}): Promise<T> {
  const loader = process.execArgv.filter((arg) => arg.includes('@tapjs/typescript'));
  const childEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', TS_NODE_TRANSPILE_ONLY: '1', ...env, ALLOCSCOPE_SCENARIO: scenario };
  const args = ['--bounding-set', '-all', '--inh-caps', '-all', process.execPath, ...loader, testFile];
  const child = spawn('setpriv', args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  return scenarioResult<T>(child, `scenario ${scenario} without capabilities`).then((result) => result.value);
}

/** Runs `fn` and returns the AllocscopeError code it throws, or 'none'. For scenarios whose results cross a process boundary. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'none';
  } catch (error) {
    return (error as { code?: string }).code ?? 'no code';
  }
}
