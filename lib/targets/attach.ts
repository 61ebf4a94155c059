/**
 * The Attach target (level 'attached'): loads liballocscope_agent.so into a running process with
 * gdb, for processes that cannot be restarted, then reads it like any agent. Opt-in only.
 *
 * Its promises, and where each is kept:
 * - the target is never left stopped or crashed: checks first (attach-preflight.ts), a safe point
 *   and bounded calls inside gdb (attach-script.ts), a deadline on every step here, detach on
 *   every path (cancel -> gdb detaches; SIGTERM -> gdb quits, which detaches an attached process;
 *   SIGKILL -> the kernel detaches), and afterwards the target is checked and, if a killed gdb
 *   left it stopped, sent SIGCONT;
 * - it never has more privilege than the caller: gdb runs as the caller, with no init files, no
 *   auto-loaded scripts and no network (debuginfod).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

export interface AttachOptions {
  /** Consent: loading code into another process can crash or stall it. Must be true. */
  allowInject: boolean;
  /** Bound on the gdb run, ms (default 15000); every step inside gets a share of it. The agent's first answer then has 5 s more at most. */
  timeoutMs?: number;
  /**
   * Let gdb load installed libc debug symbols (libc6-dbg). Default false: the calls need none,
   * and reading them while the target is stopped costs ~0.4-0.7 s more (references/limits.md §6).
   */
  debugSymbols?: boolean;
  /** gdb to run (default: gdb on PATH). */
  gdbPath?: string;
  /** The library to load (default: agentLibraryPath()); for custom builds of the agent. */
  library?: string;
  /** Cancels the attach: gdb finishes its current step, detaches, and the call rejects ECANCELED. */
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
  /** Wall time of the gdb run, ms (an upper bound of the stop). */
  gdbMs: number | null;
  /** True when the target was found stopped after gdb and was sent SIGCONT. */
  resumedTarget: boolean;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** One JSON line of the gdb script. */
interface GdbStage {
  stage: 'attached' | 'symbols' | 'safe-point' | 'loaded' | 'detached' | 'error';
  code?: string;
  message?: string;
  how?: string;
  [fact: string]: unknown;
}

interface GdbRun {
  stages: GdbStage[];
  /** Why the run was cut short, if it was. */
  cut: 'deadline' | 'cancelled' | null;
  /** gdb did not exit by itself after the cut and was sent SIGTERM (then SIGKILL). */
  killed: boolean;
  stoppedMs: number;
  gdbMs: number;
  log: string;
}

/** The budgets inside gdb: what is left of the deadline, in shares, within fixed bounds. */
function budgets(timeoutMs: number): { safePointMs: number; callMs: number } {
  const clamp = (value: number, min: number, max: number) => Math.round(Math.min(max, Math.max(min, value)));
  return { safePointMs: clamp(timeoutMs / 5, 100, 2000), callMs: clamp(timeoutMs / 5, 200, 3000) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs the gdb script against `pid`. Resolves when gdb has exited, however that happened; the
 * deadline and the abort signal cut it short in three escalating steps: cancel (the script
 * detaches at its next step), SIGTERM (gdb quits and so detaches), SIGKILL (the kernel detaches).
 */
async function runGdb(pid: number, gdb: string, library: string, options: { deadline: number; debugSymbols: boolean; signal?: AbortSignal; callMs: number; safePointMs: number }): Promise<GdbRun> {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-attach-')); // 0700: the script is ours alone
  const script = join(dir, 'inject.py');
  writeFileSync(script, GDB_INJECT_SCRIPT, { mode: 0o600 });
  const logPath = join(dir, 'gdb.log');
  // gdb writes to a file, not a pipe: if this process dies, gdb must not die of SIGPIPE mid-call.
  const log = openSync(logPath, 'w', 0o600);
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
  const started = Date.now();
  // detached: its own session, so a terminal's Ctrl-C reaches only us and we decide how gdb stops.
  const child = spawn(gdb, args, { cwd: dir, env, detached: true, stdio: ['ignore', log, log, 'pipe'] });
  closeSync(log);
  const channel = child.stdio[3] as Socket;
  const stages: GdbStage[] = [];
  let buffered = '';
  channel.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      try {
        stages.push(JSON.parse(line) as GdbStage);
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
  let cut: GdbRun['cut'] = null;
  let killed = false;
  const cutShort = async (why: 'deadline' | 'cancelled') => {
    if (cut !== null) return;
    cut = why;
    channel.destroy(); // EOF on fd 3: the script stops at its next step and detaches
    // Grace for the step in progress (at most four bounded calls: mmap, dlopen, dlerror, munmap),
    // then SIGTERM (gdb quits, which detaches), then SIGKILL (the kernel detaches).
    const escalation: Array<[NodeJS.Signals | null, number]> = [[null, 4 * options.callMs + 2000], ['SIGTERM', 2000], ['SIGKILL', 0]];
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
  return { stages, cut, killed, stoppedMs: Math.round(stoppedMs), gdbMs: Date.now() - started, log: text };
}

/**
 * After gdb, however it ended: the target must be alive and running. A gdb killed during attach
 * can leave the process in group stop, or a SIGSTOP still pending that lands a moment later, so
 * after an unclean end this looks for ~200 ms.
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
};

/** The error of a gdb run that did not load the agent (the target was found running afterwards). */
function failureOf(pid: number, run: GdbRun, timeoutMs: number, resumedTarget: boolean): AllocscopeError {
  const details = { pid, stages: run.stages.map((s) => s.stage), gdbMs: run.gdbMs, stoppedMs: run.stoppedMs, gdbKilled: run.killed, resumedTarget };
  const after = resumedTarget ? 'the target was left stopped and has been resumed (SIGCONT)' : 'the target runs on';
  if (run.cut === 'cancelled') return new AllocscopeError('ECANCELED', `attach to pid ${pid} cancelled; gdb is gone and ${after}.`, details);
  if (run.cut === 'deadline') return new AllocscopeError('ETIMEDOUT', `attach to pid ${pid} did not finish within ${timeoutMs} ms; gdb is gone and ${after}. Retry with a longer --timeout.`, details);
  const error = run.stages.find((s) => s.stage === 'error');
  if (error !== undefined) {
    const step = String(error.code);
    const ptrace = /ptrace: .+/.exec(run.log);
    return new AllocscopeError(STAGE_ERRORS[step] ?? 'EAGENT', `attach to pid ${pid} failed: ${String(error.message)}${ptrace !== null ? ` (gdb: ${ptrace[0]})` : ''}; ${after}, and nothing is left loaded.`, { ...details, step });
  }
  return new AllocscopeError('EAGENT', `gdb ended without loading the agent into pid ${pid} (${run.log.trim().split('\n').slice(-3).join(' / ') || 'no output'}); ${after}.`, details);
}

/**
 * Loads the agent into running process `pid` with gdb and returns its first snapshot (level
 * 'attached'). Throws EINVAL (no consent, bad pid, stopped target), ESRCH, EACCES (not allowed to
 * ptrace it, or the target could not load the library), EUNSUPPORTED (no gdb, other namespace),
 * ETIMEDOUT, ECANCELED or EAGENT, always with the target left running.
 */
export async function attachAgent(pid: number, options: AttachOptions): Promise<AttachResult> {
  if (options?.allowInject !== true) {
    throw new AllocscopeError('EINVAL', 'attach loads code into another process and stops it briefly; pass { allowInject: true } (the CLI: --allow-inject) to consent.', { pid });
  }
  const timeoutMs = checkNumber('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1, 3_600_000);
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
      return { snapshot: preloadsAgent(pid) ? snapshot : relabel(snapshot), injected: false, safePoint: null, stoppedMs: null, gdbMs: null, resumedTarget: false };
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
  const gdb = findGdb(options.gdbPath);
  throwIfAborted(pid, options.signal); // the agent check above may have awaited

  const run = await runGdb(pid, gdb, library, { deadline, debugSymbols: options.debugSymbols === true, signal: options.signal, ...budgets(timeoutMs) });
  const loaded = run.stages.find((s) => s.stage === 'loaded');
  const clean = run.stages.some((s) => s.stage === 'detached') && !run.killed;
  const { alive, resumed } = await ensureRunning(pid, clean);
  if (!alive) {
    throw new AllocscopeError('EAGENT', `pid ${pid} is gone after the attach (it exited, or was killed while gdb held it); see its logs.`, { pid, stages: run.stages.map((s) => s.stage) });
  }
  if (loaded === undefined) throw failureOf(pid, run, timeoutMs, resumed);
  if (run.cut === 'cancelled') {
    throw new AllocscopeError('ECANCELED', `attach to pid ${pid} cancelled after the agent was loaded; it stays loaded (never unloaded) and serves snapshots (allocscope attach ${pid} --allow-inject reads it without injecting); the target runs on.`, { pid, loaded: true });
  }
  // timeoutMs bounds gdb; the agent's first answer has bounds of its own.
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
    gdbMs: run.gdbMs,
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
  if (signal?.aborted) throw new AllocscopeError('ECANCELED', `attach to pid ${pid} cancelled before gdb started; nothing was done.`, { pid });
}

async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() >= until) return false;
    await sleep(10);
  }
  return true;
}
