/**
 * The Attach target (level 'attached'): loads liballocscope_agent.so into a running process, for
 * processes that cannot be restarted, then reads it like any agent. Opt-in only. Two injectors:
 * - 'ptrace' (default on x86_64): allocscope's own native/inject/inject.c. Safe to kill at any
 *   instant: one thread stopped at a time without signals (PTRACE_SEIZE), no breakpoints, and a
 *   self-contained call that needs no tracer once it starts (see that file);
 * - 'gdb' (elsewhere, or on request): the script of attach-script.ts inside `gdb -p`. A gdb
 *   SIGKILLed mid-call can leave the target to die at its return breakpoint (README "Reliability").
 *
 * Its promises, and where each is kept:
 * - the target is never left stopped or crashed: checks first (attach-preflight.ts), a safe point
 *   and bounded steps inside the injector, a deadline on every step here, detach on every path
 *   (cancel -> EOF on fd 3, the injector detaches; SIGTERM -> it quits, which detaches; SIGKILL ->
 *   the kernel detaches), and afterwards the target is checked and, if a killed gdb left it
 *   stopped, sent SIGCONT;
 * - it never has more privilege than the caller: the injector runs as the caller; gdb with no
 *   init files, no auto-loaded scripts and no network (debuginfod).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { AllocscopeError, type AllocscopeErrorCode, checkNumber, describe } from '../errors';
import type { Snapshot } from '../snapshot';
import { agentLibraryPath, agentSocketExists, readAgentSnapshot } from './agent';
import {
  checkLibraryLoadable,
  checkPid,
  checkPtraceAllowed,
  checkRunnable,
  checkSameNamespaces,
  findGdb,
  preloadsAgent,
  processState,
  stopSignalPending,
  targetAgentDir,
} from './attach-preflight';
import { GDB_INJECT_SCRIPT } from './attach-script';

/** How the agent gets in: allocscope's own ptrace injector, or a gdb script. */
export type Injector = 'ptrace' | 'gdb';

export interface AttachOptions {
  /** Consent: loading code into another process can crash or stall it. Must be true. */
  allowInject: boolean;
  /** Bound on the injector's run, ms (default 15000); every step inside gets a share of it. The agent's first answer then has 5 s more at most. */
  timeoutMs?: number;
  /** Default: 'ptrace' where allocscope_inject is built (x86_64), else 'gdb'. */
  injector?: Injector;
  /**
   * gdb only: let gdb load installed libc debug symbols (libc6-dbg). Default false: the calls need
   * none, and reading them while the target is stopped costs ~0.4-0.7 s more (references/limits.md §6).
   */
  debugSymbols?: boolean;
  /** gdb only: the gdb to run (default: gdb on PATH). */
  gdbPath?: string;
  /** The library to load (default: agentLibraryPath()); for custom builds of the agent. */
  library?: string;
  /** Cancels the attach: the injector finishes its current step, detaches, and the call rejects ECANCELED. */
  signal?: AbortSignal;
}

export interface AttachResult {
  /** The target's snapshot through the loaded agent (source 'attach', level 'attached'). */
  snapshot: Snapshot;
  /** False when an agent already answered and nothing was injected. */
  injected: boolean;
  /** How the call site was chosen, e.g. "blocked in epoll_wait" (null when nothing was injected). */
  safePoint: string | null;
  /** Time the target's main thread was seen in tracing stop, sampled every ~2 ms (null when nothing was injected). */
  stoppedMs: number | null;
  /**
   * ptrace only: how long the borrowed thread spent in the injected call (dlopen and the agent's
   * start), ms to within 0.1 ms; the rest of the process never stopped. Null for gdb, or when
   * nothing was injected.
   */
  callMs: number | null;
  /** The injector that ran (null when nothing was injected). */
  injector: Injector | null;
  /** Wall time of the injector's run, ms (an upper bound of the stop; null when nothing was injected). */
  injectorMs: number | null;
  /** True when the target was found stopped after the injector and was sent SIGCONT. */
  resumedTarget: boolean;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** The ptrace injector, built with the addon (binding.gyp: x86_64 only). */
export function injectorPath(): string {
  // lib/targets/attach.ts and dist/targets/attach.js are both two levels below the package root.
  return join(__dirname, '..', '..', 'build', 'Release', 'allocscope_inject');
}

/** One JSON line of the injector ('paused': the ptrace injector's test hook, ALLOCSCOPE_INJECT_PAUSE_AT). */
interface InjectorStage {
  stage: 'attached' | 'symbols' | 'safe-point' | 'loaded' | 'detached' | 'error' | 'paused';
  code?: string;
  message?: string;
  how?: string;
  [fact: string]: unknown;
}

interface InjectorRun {
  stages: InjectorStage[];
  /** Why the run was cut short, if it was. */
  cut: 'deadline' | 'cancelled' | null;
  /** The injector did not exit by itself after the cut and was sent SIGTERM (then SIGKILL). */
  killed: boolean;
  stoppedMs: number;
  injectorMs: number;
  log: string;
}

/** What to run: the program, its arguments and environment, in a private directory. */
interface InjectorCommand {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** How long a cancelled run may take to finish its step and detach, before SIGTERM. */
  graceMs: number;
}

/** The budgets inside the injector: shares of the deadline, within fixed bounds. */
function budgets(timeoutMs: number, injector: Injector): { safePointMs: number; callMs: number } {
  const clamp = (value: number, min: number, max: number) => Math.round(Math.min(max, Math.max(min, value)));
  // gdb holds every thread while it waits; the ptrace injector's samples stop one thread for
  // microseconds each, so it can afford to wait longer for a thread busy inside libc to come out.
  const safePointMs = injector === 'gdb' ? clamp(timeoutMs / 5, 100, 2000) : clamp(timeoutMs / 2, 100, 10_000);
  return { safePointMs, callMs: clamp(timeoutMs / 5, 200, 3000) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The gdb run: the script in the private directory, gdb told to read nothing else. */
function gdbCommand(pid: number, gdb: string, library: string, dir: string, options: { debugSymbols: boolean; callMs: number; safePointMs: number }): InjectorCommand {
  const script = join(dir, 'inject.py');
  writeFileSync(script, GDB_INJECT_SCRIPT, { mode: 0o600 });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ALLOCSCOPE_ATTACH_PID: String(pid),
    ALLOCSCOPE_ATTACH_LIBRARY: library,
    ALLOCSCOPE_ATTACH_SAFE_POINT_MS: String(options.safePointMs),
    ALLOCSCOPE_ATTACH_CALL_MS: String(options.callMs),
  };
  delete env.LD_PRELOAD; // not into gdb itself
  const args = [
    '-nx', // no gdbinit of any user: nothing but this script runs with the caller's rights
    '-batch',
    '-iex', 'set auto-load off', // no scripts shipped next to the target's libraries
    '-iex', 'set debuginfod enabled off', // no network, no prompt
    '-iex', 'set auto-solib-add off', // read symbols of libc and the allocator only (the script does)
    ...(options.debugSymbols ? [] : ['-iex', `set debug-file-directory ${dir}`]),
    // The executable named up front is read *before* gdb attaches; found by -p alone it is read
    // while the target is stopped: for node (a ~100 MB binary) 1.8-2.0 s of stop instead of ~0.3 s.
    `/proc/${pid}/exe`,
    '-p', String(pid),
    '-x', script,
  ];
  // At most four bounded calls (mmap, dlopen, dlerror, munmap) finish after a cancel.
  return { file: gdb, args, env, graceMs: 4 * options.callMs + 2000 };
}

/** The ptrace injector's run: after a cancel it detaches at once, or waits out its one call. */
function ptraceCommand(pid: number, library: string, options: { callMs: number; safePointMs: number }): InjectorCommand {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LD_PRELOAD;
  return { file: injectorPath(), args: [String(pid), library, String(options.safePointMs), String(options.callMs)], env, graceMs: options.callMs + 2000 };
}

/**
 * Runs an injector against `pid` in a private 0700 directory (its cwd, its log). Resolves when it
 * has exited, however that happened; the deadline and the abort signal cut it short in three
 * escalating steps: cancel (EOF on fd 3: it detaches at its next step), SIGTERM (it quits and so
 * detaches), SIGKILL (the kernel detaches).
 */
async function runInjector(pid: number, command: (dir: string) => InjectorCommand, options: { deadline: number; signal?: AbortSignal }): Promise<InjectorRun> {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-attach-')); // 0700: the script is ours alone
  const { file, args, env, graceMs } = command(dir);
  const logPath = join(dir, 'injector.log');
  // A file, not a pipe: if this process dies, the injector must not die of SIGPIPE mid-call.
  const log = openSync(logPath, 'w', 0o600);
  const started = Date.now();
  // detached: its own session, so a terminal's Ctrl-C reaches only us and we decide how gdb stops.
  const child = spawn(file, args, { cwd: dir, env, detached: true, stdio: ['ignore', log, log, 'pipe'] });
  closeSync(log);
  const channel = child.stdio[3] as Socket;
  const stages: InjectorStage[] = [];
  let buffered = '';
  channel.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      try {
        stages.push(JSON.parse(line) as InjectorStage);
      } catch {
        /* not ours */
      }
    }
  });
  channel.on('error', () => {});

  // The stop the target feels: its main thread in tracing stop ('t'), sampled.
  let stoppedMs = 0;
  let lastSample = process.hrtime.bigint();
  const sampler = setInterval(() => {
    const now = process.hrtime.bigint();
    if (processState(pid) === 't') stoppedMs += Number(now - lastSample) / 1e6;
    lastSample = now;
  }, 2);

  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  // 'exit' can come before the last lines on fd 3 have been read: those are read until its close.
  const channelClosed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
  let cut: InjectorRun['cut'] = null;
  let killed = false;
  const cutShort = async (why: 'deadline' | 'cancelled') => {
    if (cut !== null) return;
    cut = why;
    // EOF on fd 3 (our side half-closed): the injector stops at its next step and detaches. Its
    // side stays open: a step it still finishes (the ptrace injector's call, once under way) is heard.
    channel.end();
    // Grace for the step in progress, then SIGTERM (it quits, which detaches), then SIGKILL (the
    // kernel detaches).
    const escalation: Array<[NodeJS.Signals | null, number]> = [[null, graceMs], ['SIGTERM', 2000], ['SIGKILL', 0]];
    for (const [signal, waitMs] of escalation) {
      if (signal !== null) {
        killed = true;
        child.kill(signal);
      }
      if (await settlesWithin(exited, waitMs)) return;
    }
  };
  const onAbort = () => void cutShort('cancelled');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => void cutShort('deadline'), Math.max(0, options.deadline - Date.now()));
  try {
    await exited;
    await settlesWithin(channelClosed, 1000);
  } finally {
    clearTimeout(timer);
    clearInterval(sampler);
    options.signal?.removeEventListener('abort', onAbort);
    channel.destroy();
  }
  let text = '';
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    /* no log */
  }
  rmSync(dir, { recursive: true, force: true });
  return { stages, cut, killed, stoppedMs: Math.round(stoppedMs), injectorMs: Date.now() - started, log: text };
}

/**
 * After the injector, however it ended: the target must be alive and running. A gdb killed
 * during attach can leave the process in group stop, or a SIGSTOP still pending that lands a
 * moment later, so after an unclean end this looks for ~200 ms (the ptrace injector sends no
 * signal, but the check costs nothing).
 */
async function ensureRunning(pid: number, clean: boolean): Promise<{ alive: boolean; resumed: boolean }> {
  const gone = (state: string | null) => state === null || /^[ZX]$/.test(state);
  let resumed = false;
  for (let round = 0; round < (clean ? 1 : 10); round++) {
    if (round > 0) await sleep(20);
    if (gone(processState(pid))) return { alive: false, resumed };
    if (processState(pid) === 'T' || stopSignalPending(pid)) {
      process.kill(pid, 'SIGCONT');
      resumed = true;
    }
  }
  return { alive: !gone(processState(pid)), resumed };
}

function relabel(snapshot: Snapshot): Snapshot {
  return { ...snapshot, source: 'attach', level: 'attached', levelNote: null };
}

const STAGE_ERRORS: Record<string, AllocscopeErrorCode> = {
  attach: 'EACCES',
  'no-safe-point': 'ETIMEDOUT',
  timeout: 'ETIMEDOUT',
  dlopen: 'EAGENT',
  // The ptrace injector's own refusals: a libc it cannot call into, no room for the call, no XSAVE.
  symbols: 'EUNSUPPORTED',
  cave: 'EUNSUPPORTED',
  unsupported: 'EUNSUPPORTED',
};

/** The error of an injector run that did not load the agent (the target was found running afterwards). */
function failureOf(pid: number, injector: Injector, run: InjectorRun, timeoutMs: number, resumedTarget: boolean): AllocscopeError {
  const details = { pid, injector, stages: run.stages.map((s) => s.stage), injectorMs: run.injectorMs, stoppedMs: run.stoppedMs, injectorKilled: run.killed, resumedTarget };
  const after = resumedTarget ? 'the target was left stopped and has been resumed (SIGCONT)' : 'the target runs on';
  if (run.cut === 'cancelled') return new AllocscopeError('ECANCELED', `attach to pid ${pid} cancelled; the ${injector} injector is gone and ${after}.`, details);
  if (run.cut === 'deadline') return new AllocscopeError('ETIMEDOUT', `attach to pid ${pid} did not finish within ${timeoutMs} ms; the ${injector} injector is gone and ${after}. Retry with a longer --timeout.`, details);
  const error = run.stages.find((s) => s.stage === 'error');
  if (error !== undefined) {
    const step = String(error.code);
    const ptrace = /ptrace: .+/.exec(run.log);
    // The ptrace injector's call cannot be unwound once it runs (it holds the loader's lock).
    const loaded = injector === 'ptrace' && step === 'timeout' ? 'and the call may still load the agent' : 'and nothing is left loaded';
    return new AllocscopeError(STAGE_ERRORS[step] ?? 'EAGENT', `attach to pid ${pid} failed: ${String(error.message)}${ptrace !== null ? ` (gdb: ${ptrace[0]})` : ''}; ${after}, ${loaded}.`, { ...details, step });
  }
  return new AllocscopeError('EAGENT', `the ${injector} injector ended without loading the agent into pid ${pid} (${run.log.trim().split('\n').slice(-3).join(' / ') || 'no output'}); ${after}.`, details);
}

/** The injector to use: the one asked for, else ptrace where it is built; gdb-only options need gdb. */
function chooseInjector(pid: number, options: AttachOptions): Injector {
  const built = process.arch === 'x64' && existsSync(injectorPath());
  const injector = options.injector ?? (built ? 'ptrace' : 'gdb');
  if (injector !== 'ptrace' && injector !== 'gdb') {
    throw new AllocscopeError('EINVAL', `injector is 'ptrace' or 'gdb'; got ${describe(injector)}.`, { pid });
  }
  if (injector === 'ptrace' && (options.debugSymbols !== undefined || options.gdbPath !== undefined)) {
    throw new AllocscopeError('EINVAL', "debugSymbols and gdbPath apply to the gdb injector only; pass injector: 'gdb' with them (the CLI: --injector gdb).", { pid });
  }
  if (injector === 'ptrace' && !built) {
    throw new AllocscopeError('EUNSUPPORTED', `the ptrace injector is built for x86_64 only (${injectorPath()} is missing on ${process.arch}); use injector: 'gdb' (the CLI: --injector gdb).`, { pid });
  }
  return injector;
}

/**
 * Loads the agent into running process `pid` and returns its first snapshot (level 'attached').
 * Throws EINVAL (no consent, bad pid or options, stopped target), ESRCH, EACCES (not allowed to
 * ptrace it, or the target could not load the library), EUNSUPPORTED (no gdb, other namespace, a
 * target the ptrace injector cannot call into), ETIMEDOUT, ECANCELED or EAGENT, always with the
 * target left running.
 */
export async function attachAgent(pid: number, options: AttachOptions): Promise<AttachResult> {
  if (options?.allowInject !== true) {
    throw new AllocscopeError('EINVAL', 'attach loads code into another process and stops it briefly; pass { allowInject: true } (the CLI: --allow-inject) to consent.', { pid });
  }
  const timeoutMs = checkNumber('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1, 3_600_000);
  const injector = chooseInjector(pid, options);
  const deadline = Date.now() + timeoutMs;
  checkPid(pid);
  throwIfAborted(pid, options.signal);
  const status = checkRunnable(pid);
  checkPtraceAllowed(pid, status);
  checkSameNamespaces(pid);
  const dir = targetAgentDir(pid);
  if (agentSocketExists(pid, { dir })) {
    try {
      const snapshot = await readAgentSnapshot(pid, { dir, timeoutMs: Math.min(2000, timeoutMs) });
      return { snapshot: preloadsAgent(pid) ? snapshot : relabel(snapshot), injected: false, safePoint: null, stoppedMs: null, callMs: null, injector: null, injectorMs: null, resumedTarget: false };
    } catch {
      /* a stale socket: inject */
    }
  }
  const library = options.library ?? agentLibraryPath();
  if (!isAbsolute(library) || library.length > 4000) {
    // A relative path would be resolved in the target's cwd; the path must fit the page it is written to.
    throw new AllocscopeError('EINVAL', `library must be an absolute path of at most 4000 characters; got ${describe(library)}.`, { pid, library });
  }
  checkLibraryLoadable(pid, status, library);
  const gdb = injector === 'gdb' ? findGdb(options.gdbPath) : null;
  throwIfAborted(pid, options.signal); // the agent check above may have awaited

  const shares = budgets(timeoutMs, injector);
  const command = (dir: string) => (gdb !== null ? gdbCommand(pid, gdb, library, dir, { debugSymbols: options.debugSymbols === true, ...shares }) : ptraceCommand(pid, library, shares));
  const run = await runInjector(pid, command, { deadline, signal: options.signal });
  const loaded = run.stages.find((s) => s.stage === 'loaded');
  const clean = run.stages.some((s) => s.stage === 'detached') && !run.killed;
  const { alive, resumed } = await ensureRunning(pid, clean);
  if (!alive) {
    throw new AllocscopeError('EAGENT', `pid ${pid} is gone after the attach (it exited, or was killed while the ${injector} injector held it); see its logs.`, { pid, injector, stages: run.stages.map((s) => s.stage) });
  }
  if (loaded === undefined) throw failureOf(pid, injector, run, timeoutMs, resumed);
  if (run.cut === 'cancelled') {
    throw new AllocscopeError('ECANCELED', `attach to pid ${pid} cancelled after the agent was loaded; it stays loaded (never unloaded) and serves snapshots (allocscope attach ${pid} --allow-inject reads it without injecting); the target runs on.`, { pid, loaded: true });
  }
  // timeoutMs bounds the injector; the agent's first answer has bounds of its own.
  const appeared = await waitUntil(() => agentSocketExists(pid, { dir }), 3000);
  if (!appeared) {
    throw new AllocscopeError('EAGENT', `the agent is loaded into pid ${pid} but opened no socket (its directory may be untrusted: ${dir ?? `/tmp/allocscope-<uid>`}); the target runs on.`, { pid, dir });
  }
  const snapshot = await readAgentSnapshot(pid, { dir, timeoutMs: 2000 });
  return {
    snapshot: relabel(snapshot),
    injected: true,
    safePoint: String(loaded.how),
    stoppedMs: run.stoppedMs,
    callMs: typeof loaded.callUs === 'number' ? loaded.callUs / 1000 : null,
    injector,
    injectorMs: run.injectorMs,
    resumedTarget: resumed,
  };
}

/** True if `promise` settles within `ms`; leaves no timer behind (it would keep the process alive). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function throwIfAborted(pid: number, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AllocscopeError('ECANCELED', `attach to pid ${pid} cancelled before the injector started; nothing was done.`, { pid });
}

async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() >= until) return false;
    await sleep(10);
  }
  return true;
}
