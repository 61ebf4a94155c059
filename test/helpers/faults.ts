/** Helpers for the fault tests (test/faults): the CLI as a real child process, and what a fault left behind. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processState, readStatus } from '../../lib/targets/attach-preflight';

export const MAIN = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
export const PROFILE_PID = join(__dirname, '..', '..', 'scripts', 'profile-pid');

export interface Cli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code and signal; kills the CLI (SIGKILL) after `timeoutMs`. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node args...` with stdout and stderr collected; bounded by `timeoutMs`. */
export function startCli(args: readonly string[], timeoutMs = 30_000, env: NodeJS.ProcessEnv = process.env): Cli {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** A seeded PRNG (mulberry32): the same kill points on every run, and in the test's output. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface NdjsonCheck {
  /** Lines that parse as JSON objects. */
  samples: Record<string, unknown>[];
  /** Lines that do not parse (must be none). */
  broken: string[];
  /** True when the file is empty or ends with a newline (no partial last line). */
  endsWhole: boolean;
}

/** Reads an NDJSON file as a fault left it. A missing file counts as empty. */
export function checkNdjson(path: string): NdjsonCheck {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const lines = text.split('\n');
  lines.pop();
  const samples: Record<string, unknown>[] = [];
  const broken: string[] = [];
  for (const line of lines) {
    try {
      samples.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      broken.push(line.slice(0, 80));
    }
  }
  return { samples, broken, endsWhole: text === '' || text.endsWith('\n') };
}

/** true when `pid` runs freely (not stopped, traced, a zombie or gone), else why not. */
export function runsFree(pid: number): string | true {
  const state = processState(pid);
  const tracer = readStatus(pid)?.TracerPid;
  if (state === null || state === 'Z' || state === 'X') return `pid ${pid} is gone (${state})`;
  if (state === 'T' || state === 't') return `pid ${pid} is stopped (${state})`;
  if (tracer !== undefined && tracer !== '0') return `pid ${pid} is still traced by ${tracer}`;
  return true;
}

/** A stack trace in CLI output: what a fault must never produce. */
export const STACK_TRACE = /^\s+at .+\(.*:\d+:\d+\)$|Unhandled 'error' event|node:internal/m;
