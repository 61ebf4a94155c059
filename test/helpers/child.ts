/**
 * Runs scenarios of a test file in a child process with an allocator preloaded: the test file
 * re-executes itself with ALLOCSCOPE_SCENARIO set, through the same loader tap gave it
 * (process.execArgv), and the child prints one JSON line of results.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { ALLOCATOR_LIBRARIES, allocatorInstalled } from '../../lib/allocators/libraries';
import type { AllocatorName } from '../../lib/snapshot';

export const PRELOADABLE: readonly AllocatorName[] = ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc'];

/**
 * The skip reason for an allocator that is not installed. In CI a missing library must fail the
 * run instead, so there it returns false and the test runs (and fails loudly).
 */
export function skipUnlessInstalled(name: AllocatorName): string | false {
  if (allocatorInstalled(name) || process.env.CI) return false;
  const library = ALLOCATOR_LIBRARIES[name];
  return `${name} is not installed: apt-get install ${library?.debianPackage ?? name}`;
}

export interface ChildResult<T> {
  value: T;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The scenario this process should run, when it is a child. */
export function scenarioName(): string | undefined {
  return process.env.ALLOCSCOPE_SCENARIO;
}

/** Prints a scenario's result for the parent and exits. */
export async function runScenario(scenarios: Record<string, () => unknown | Promise<unknown>>): Promise<void> {
  const name = scenarioName() as string;
  const scenario = scenarios[name];
  if (scenario === undefined) throw new Error(`no scenario ${name}`);
  const value = await scenario();
  const line = `${JSON.stringify({ scenarioResult: value }, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}\n`;
  // Exit as soon as the line is out: the test file imported tap, whose root test would otherwise
  // keep this child alive until tap's own timeout.
  await new Promise<void>((resolve) => process.stdout.write(line, () => resolve()));
  process.exit(0);
}

/** Runs `scenario` of `testFile` in a child under `allocator`; resolves with its JSON result. */
export function inChild<T>(
  testFile: string,
  scenario: string,
  allocator: AllocatorName,
  env: Record<string, string> = {},
  options: { coverage?: boolean } = {},
): Promise<ChildResult<T>> {
  const library = ALLOCATOR_LIBRARIES[allocator];
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, ALLOCSCOPE_SCENARIO: scenario };
  // V8's precise coverage slows hot loops and forced GCs by orders of magnitude (a 20-run leak
  // check: seconds without it, over 6 minutes with it); scenarios that are benchmarks of a sort
  // opt out. Their code is covered by the parent's own calls.
  if (options.coverage === false) delete childEnv.NODE_V8_COVERAGE;
  delete childEnv.LD_PRELOAD;
  if (library !== undefined) childEnv.LD_PRELOAD = library.path;
  const child = spawn(process.execPath, [...process.execArgv, testFile], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  return scenarioResult<T>(child, `scenario ${scenario} under ${allocator}`);
}

/**
 * Collects a scenario child's stdout and stderr until it closes, and resolves with the result line
 * runScenario printed; rejects, naming `what` and showing both streams, when there is none.
 */
export function scenarioResult<T>(child: ChildProcessByStdio<null, Readable, Readable>, what: string): Promise<ChildResult<T>> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith('{"scenarioResult"'));
      if (line === undefined) {
        reject(new Error(`${what} printed no result (exit ${code}, signal ${signal}):\n${stderr}\n${stdout}`));
        return;
      }
      resolve({ value: (JSON.parse(line) as { scenarioResult: T }).scenarioResult, stderr, code, signal });
    });
  });
}

/**
 * A `child(scenario, allocator, env)` for one test file that starts each scenario's child at most
 * once: a file can start all its children at load (they are independent processes and run in
 * parallel) and let each test await its own.
 */
export function childOnce(testFile: string): <T>(scenario: string, allocator: AllocatorName, env?: Record<string, string>) => Promise<ChildResult<T>> {
  const started = new Map<string, Promise<ChildResult<unknown>>>();
  return <T>(scenario: string, allocator: AllocatorName, env: Record<string, string> = {}) => {
    let pending = started.get(scenario);
    if (pending === undefined) {
      pending = inChild<unknown>(testFile, scenario, allocator, env);
      pending.catch(() => undefined); // its test awaits it: no unhandled rejection meanwhile
      started.set(scenario, pending);
    }
    return pending as Promise<ChildResult<T>>;
  };
}
