/**
 * The load of a compare run, driven in steps: the built-in HTTP load generator (node:http with
 * keep-alive, `concurrency` requests in flight) or an external tool (load-command.ts: ab, wrk or
 * the user's command). Every load is bounded in count (`requests`) and in time (`deadline`), and
 * stops at once when `signal` aborts (Ctrl-C, or the server died).
 */
import { Agent, request as httpRequest } from 'node:http';
import { AllocscopeError } from '../errors';

/** How the load is produced: 'builtin', 'ab', 'wrk', or the user's command. */
export type LoadSpec =
  | { kind: 'builtin' }
  | { kind: 'ab' }
  | { kind: 'wrk' }
  /** argv: run without a shell, {url} {requests} {concurrency} replaced in each argument. */
  | { kind: 'argv'; argv: string[] }
  /** One string: run by /bin/sh -c, the figures in ALLOCSCOPE_URL/_REQUESTS/_CONCURRENCY. */
  | { kind: 'shell'; command: string };

export interface LoadOptions {
  url: URL;
  /** Requests to complete in all. */
  requests: number;
  /** Requests between two samples. */
  step: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** performance.now() time after which no more requests are started, ms. */
  deadline: number;
  /** Aborts the load (the requests in flight are dropped, a running tool is stopped). */
  signal: AbortSignal;
  /**
   * Called each time the completed count crosses a step boundary (the runner samples once more at
   * the end). The
   * built-in generator does not wait for it, so sampling does not pause the load; external tools
   * run step by step and it is awaited between steps.
   */
  onStep: (completed: number) => void | Promise<void>;
  /** Bound on one request (built-in) or one step of a tool, ms. Default 10,000 / 120,000. */
  timeoutMs?: number;
}

export type LoadEnd = 'done' | 'deadline' | 'aborted' | 'errors';

export interface LoadResult {
  completed: number;
  failed: number;
  /** Wall time from the first request to the last answer, ms. */
  elapsedMs: number;
  endedBy: LoadEnd;
  /** Why the load failed (endedBy 'errors'). */
  error: AllocscopeError | null;
}

/** The load gives up when this many requests failed and they are over a tenth of those tried. */
export const MAX_FAILED_REQUESTS = 50;

/** True when too many requests failed to call the load a success. */
export function tooManyFailures(completed: number, failed: number): boolean {
  return failed >= MAX_FAILED_REQUESTS && failed * 10 > completed + failed;
}

/** Parses --load: builtin, ab, wrk, a JSON argv array, or any other string as a shell command. */
export function parseLoad(text: string): LoadSpec {
  const value = text.trim();
  if (value === 'builtin' || value === 'ab' || value === 'wrk') return { kind: value };
  if (value === '') throw new AllocscopeError('EINVAL', '--load needs builtin, ab, wrk, a JSON argv array or a command.', { value: text });
  if (value.startsWith('[')) {
    let argv: unknown;
    try {
      argv = JSON.parse(value);
    } catch {
      argv = null;
    }
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string' && a !== '')) {
      throw new AllocscopeError('EINVAL', `--load as an argv array is JSON like ["hey","-n","{requests}","{url}"]; got ${value.slice(0, 80)}.`, { value: text });
    }
    return { kind: 'argv', argv: argv as string[] };
  }
  return { kind: 'shell', command: value };
}

/** The name of a load for the summary: 'builtin', 'ab', 'wrk', or the command itself. */
export function loadName(spec: LoadSpec): string {
  if (spec.kind === 'argv') return JSON.stringify(spec.argv);
  if (spec.kind === 'shell') return spec.command;
  return spec.kind;
}

/** Drives the built-in generator: `concurrency` keep-alive connections, each one request at a time. */
export async function builtinLoad(options: LoadOptions): Promise<LoadResult> {
  const { url, requests, step, concurrency, deadline, signal, onStep } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let issued = 0;
  let completed = 0;
  let failed = 0;
  let nextStep = step;
  let firstError: string | null = null;
  let endedBy: LoadEnd = 'done';
  const started = performance.now();

  const once = () =>
    new Promise<boolean>((resolve) => {
      const req = httpRequest(url, { agent, method: 'GET', signal }, (res) => {
        // 'close' comes after 'end', and also when the connection drops mid-answer (a crash),
        // where 'end' never comes: settle there.
        let ended = false;
        res.on('end', () => (ended = true));
        res.on('error', () => undefined);
        res.on('close', () => {
          const ok = ended && (res.statusCode ?? 0) < 400;
          if (!ok && !signal.aborted) firstError ??= ended ? `HTTP ${res.statusCode}` : 'the connection closed in the middle of an answer';
          resolve(ok);
        });
        res.resume();
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (error) => {
        if (!signal.aborted) firstError ??= error.message;
        resolve(false);
      });
      req.end();
    });

  const worker = async () => {
    while (issued < requests) {
      if (signal.aborted) return void (endedBy = 'aborted');
      if (performance.now() >= deadline) return void (endedBy = endedBy === 'done' ? 'deadline' : endedBy);
      if (tooManyFailures(completed, failed)) return void (endedBy = 'errors');
      issued++;
      if (await once()) {
        completed++;
        if (completed >= nextStep) {
          nextStep += step;
          void onStep(completed);
        }
      } else {
        failed++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, worker));
  } finally {
    agent.destroy();
  }
  if (signal.aborted) endedBy = 'aborted';
  else if (tooManyFailures(completed, failed)) endedBy = 'errors';
  const elapsedMs = performance.now() - started;
  const error =
    endedBy === 'errors'
      ? new AllocscopeError('EPROTO', `${failed} of ${completed + failed} requests to ${url.href} failed (first: ${firstError ?? 'unknown'}).`, { completed, failed })
      : null;
  return { completed, failed, elapsedMs, endedBy, error };
}
