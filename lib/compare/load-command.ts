/**
 * External load tools, run once per step so compare can sample between steps: ab (Apache's
 * benchmark, count-based), wrk (time-based: each step lasts long enough for about `step` requests
 * at the rate seen so far, whole seconds as wrk takes them) or the user's command. Tools run from
 * argv arrays; only a command the user gave as one string goes through /bin/sh. Every step is
 * bounded in time and stopped (by its pid) when the load is aborted.
 */
import { spawn } from 'node:child_process';
import { AllocscopeError } from '../errors';
import { type LoadEnd, type LoadOptions, type LoadResult, type LoadSpec, tooManyFailures } from './load';

export interface StepOutcome {
  completed: number;
  failed: number;
  /** Why the step failed as a whole (the tool exited non-zero, timed out, or could not start). */
  error: AllocscopeError | null;
}

/** Runs argv without a shell; resolves with exit status and output, bounded by `timeoutMs`. */
export function runTool(argv: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number, signal: AbortSignal): Promise<{ status: number | null; stdout: string; stderr: string; error: AllocscopeError | null }> {
  return new Promise((resolve) => {
    // A process group of its own, so stopping it also stops what a shell command started (a
    // `sleep` left behind would hold the output pipes open); its id is the tool's pid.
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let error: AllocscopeError | null = null;
    const stop = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* the group has already ended */
      }
    };
    const timer = setTimeout(() => {
      error = new AllocscopeError('ETIMEDOUT', `the load command ${argv[0]} ran longer than ${timeoutMs} ms for one step and was stopped.`, { argv });
      stop();
    }, timeoutMs);
    signal.addEventListener('abort', stop, { once: true });
    child.stdout.on('data', (chunk) => (stdout = (stdout + chunk).slice(-65536)));
    child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-65536)));
    child.once('error', (e: NodeJS.ErrnoException) => {
      error = new AllocscopeError('EINVAL', `cannot run the load command ${argv[0]}: ${e.message}${e.code === 'ENOENT' ? ' (is it installed? ab: apt-get install apache2-utils; wrk: apt-get install wrk)' : ''}.`, { argv });
    });
    child.once('close', (status) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
      resolve({ status, stdout, stderr, error });
    });
  });
}

function count(text: string, pattern: RegExp): number {
  const match = pattern.exec(text);
  return match === null ? 0 : Number(match[1]);
}

/**
 * ab's report: completed and failed requests (non-2xx answers count as failed). ab also counts as
 * "failed" every answer whose length differs from the first one's ("Length: N" in its breakdown):
 * any dynamic page does that, so those are not failures here (ab(1), "Failed requests").
 */
export function parseAbOutput(stdout: string): { completed: number; failed: number } | null {
  if (!/Complete requests:/.test(stdout)) return null;
  const complete = count(stdout, /Complete requests:\s+(\d+)/);
  const lengthOnly = count(stdout, /\(Connect: \d+, Receive: \d+, Length: (\d+)/);
  const failed = count(stdout, /Failed requests:\s+(\d+)/) - lengthOnly + count(stdout, /Non-2xx responses:\s+(\d+)/);
  return { completed: Math.max(0, complete - failed), failed };
}

/** wrk's report: requests done, and the failed ones (socket errors and non-2xx/3xx answers). */
export function parseWrkOutput(stdout: string): { completed: number; failed: number } | null {
  const done = /(\d+) requests in/.exec(stdout);
  if (done === null) return null;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = count(stdout, /Non-2xx or 3xx responses:\s+(\d+)/);
  return { completed: Math.max(0, Number(done[1]) - non2xx), failed: non2xx + socketErrors };
}

/** One step of an external load: `requests` requests (wrk: `seconds` of load). */
export async function commandStep(spec: Exclude<LoadSpec, { kind: 'builtin' }>, options: LoadOptions, requests: number, seconds: number): Promise<StepOutcome> {
  const { url, concurrency, signal } = options;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const inFlight = Math.max(1, Math.min(concurrency, requests));
  const env: NodeJS.ProcessEnv = { ...process.env, ALLOCSCOPE_URL: url.href, ALLOCSCOPE_REQUESTS: String(requests), ALLOCSCOPE_CONCURRENCY: String(inFlight) };
  let argv: string[];
  if (spec.kind === 'ab') argv = ['ab', '-q', '-k', '-s', '10', '-n', String(requests), '-c', String(inFlight), url.href];
  else if (spec.kind === 'wrk') argv = ['wrk', '-t', '1', '-c', String(concurrency), '-d', `${seconds}s`, '--timeout', '10s', url.href];
  else if (spec.kind === 'argv') argv = spec.argv.map((a) => a.replaceAll('{url}', url.href).replaceAll('{requests}', String(requests)).replaceAll('{concurrency}', String(inFlight)));
  else argv = ['/bin/sh', '-c', spec.command];
  const run = await runTool(argv, env, timeoutMs + seconds * 1000, signal);
  if (run.error !== null) return { completed: 0, failed: requests, error: run.error };
  const parsed = spec.kind === 'ab' ? parseAbOutput(run.stdout) : spec.kind === 'wrk' ? parseWrkOutput(run.stdout) : null;
  if (run.status !== 0 || (parsed === null && (spec.kind === 'ab' || spec.kind === 'wrk'))) {
    const said = `${run.stderr}\n${run.stdout}`.trim().split('\n').slice(-2).join(' ').slice(0, 300);
    return {
      completed: parsed?.completed ?? 0,
      failed: parsed?.failed ?? requests,
      error: new AllocscopeError('EPROTO', `the load command ${argv[0]} failed (exit ${run.status}): ${said || 'no output'}.`, { argv, status: run.status }),
    };
  }
  // A user's command reports nothing we can parse: exit 0 means its requests were served.
  return { completed: parsed?.completed ?? requests, failed: parsed?.failed ?? 0, error: null };
}

/** Drives an external load step by step, awaiting `onStep` between steps. */
export async function commandLoad(spec: Exclude<LoadSpec, { kind: 'builtin' }>, options: LoadOptions): Promise<LoadResult> {
  const { requests, step, deadline, signal, onStep } = options;
  let completed = 0;
  let failed = 0;
  let endedBy: LoadEnd = 'done';
  let error: AllocscopeError | null = null;
  let rate: number | null = null;
  const started = performance.now();
  while (completed < requests) {
    if (signal.aborted) {
      endedBy = 'aborted';
      break;
    }
    if (performance.now() >= deadline) {
      endedBy = 'deadline';
      break;
    }
    const want = Math.min(step, requests - completed);
    // wrk takes whole seconds: enough for `want` requests at the rate seen so far (1 s at first).
    const seconds = rate === null ? 1 : Math.max(1, Math.min(60, Math.round(want / rate)));
    const stepStarted = performance.now();
    const outcome = await commandStep(spec, options, want, seconds);
    if (signal.aborted) {
      endedBy = 'aborted';
      break;
    }
    completed += outcome.completed;
    failed += outcome.failed;
    if (outcome.completed > 0) rate = outcome.completed / ((performance.now() - stepStarted) / 1000);
    if (outcome.error !== null || tooManyFailures(completed, failed) || outcome.completed === 0) {
      endedBy = 'errors';
      error = outcome.error ?? new AllocscopeError('EPROTO', `${failed} of ${completed + failed} requests failed under ${spec.kind === 'shell' ? 'the load command' : spec.kind}.`, { completed, failed });
      break;
    }
    await onStep(completed);
  }
  return { completed, failed, elapsedMs: performance.now() - started, endedBy, error };
}
