/** Starts test/fixtures/inject_target (the injector's witness: it checks its own state) and follows it to its end. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './workload';

export const INJECT_TARGET = join(__dirname, '..', '..', 'build', 'Release', 'inject_target');

/** 'registers' checks ymm0-14: x86_64 with AVX2 only (elsewhere inject_target exits 6). */
export const REGISTER_CHECK = process.arch === 'x64' && /\bavx2\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));

export interface InjectTarget {
  child: ChildProcess;
  pid: number;
  /** What it printed so far ("ready PID", then "ok" or what went wrong). */
  printed(): string;
  /** Its exit code: 0 when every check held. */
  ended: Promise<number | null>;
}

/** `inject_target MODE N`, once it printed "ready". The caller ends it (child.kill) in its teardown. */
export async function startInjectTarget(mode: 'registers' | 'sleep' | 'malloc', n: number): Promise<InjectTarget> {
  const child = spawn(INJECT_TARGET, [mode, String(n)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let printed = '';
  child.stdout?.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  const ended = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await waitFor(() => printed.startsWith('ready'), 5000);
  return { child, pid: child.pid as number, printed: () => printed, ended };
}
