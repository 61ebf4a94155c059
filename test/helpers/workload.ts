/** Starts test/fixtures/heap_workload (a plain C process) with preloads, and ends it by PID. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ALLOCATOR_LIBRARIES } from '../../lib/allocators/libraries';
import type { AllocatorName } from '../../lib/snapshot';
import { agentLibraryPath, agentSocketPath } from '../../lib/targets/agent';
import { rmSync } from 'node:fs';

export const WORKLOAD = join(__dirname, '..', '..', 'build', 'Release', 'heap_workload');

export interface Workload {
  child: ChildProcess;
  pid: number;
  /** Lines the workload printed ("ready PID", "child PID"). */
  lines: string[];
  stop(): void;
}

export interface WorkloadOptions {
  allocator?: AllocatorName;
  agent?: boolean;
  env?: Record<string, string>;
}

/** Starts `heap_workload mode param stepMs steps` and resolves once it printed "ready". */
export function startWorkload(args: string[], options: WorkloadOptions = {}): Promise<Workload> {
  const preloads: string[] = [];
  const library = options.allocator !== undefined ? ALLOCATOR_LIBRARIES[options.allocator] : undefined;
  if (library !== undefined) preloads.push(library.path);
  if (options.agent !== false) preloads.push(agentLibraryPath());
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  delete env.LD_PRELOAD;
  if (preloads.length > 0) env.LD_PRELOAD = preloads.join(':');
  const child = spawn(WORKLOAD, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    let ready = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
      if (!ready && lines.some((l) => l.startsWith('ready '))) {
        ready = true;
        resolve({
          child,
          pid: child.pid as number,
          lines,
          stop: () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
            // A SIGKILLed agent cannot remove its socket: tidy it once the process is gone.
            child.once('exit', () => rmSync(agentSocketPath(child.pid as number), { force: true }));
            if (child.exitCode !== null || child.signalCode !== null) rmSync(agentSocketPath(child.pid as number), { force: true });
          },
        });
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`heap_workload exited before ready (${code}, ${signal})`));
    });
  });
}

/** Polls `check` every 20 ms until it returns true or `ms` pass. */
export async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
