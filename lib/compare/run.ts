/**
 * runCompare(): the experiment, automated. For every variant (and every repetition): start the
 * server under that allocator with the agent preloaded, wait for its port, drive the load in
 * steps, take a snapshot after every step (streamed to the run's NDJSON file as it is taken),
 * stop the server, and rewrite DIR/summary.json, so nothing collected is lost when a later run
 * fails or the user stops compare. One variant's failure (it does not start, crashes, the load
 * fails) is recorded for that variant and the next one runs.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { AllocscopeError } from '../errors';
import { formatDuration } from '../report/format';
import { SampleWriter } from '../report/sample-writer';
import type { Snapshot } from '../snapshot';
import { openTarget, type TargetSource } from '../targets/pick';
import { aggregateRuns, rankVariants, runFigures } from './aggregate';
import { builtinLoad, type LoadOptions, type LoadResult, type LoadSpec, loadName } from './load';
import { commandLoad } from './load-command';
import { exitSentence, startServer, type StartedServer } from './server';
import { COMPARE_SUMMARY_VERSION, type CompareSummary, type CompareVariantRun, writeCompareSummary } from './summary';
import { type CompareVariant, missingLibrary } from './variants';

export interface CompareOptions {
  /** The server command, argv (no shell). */
  command: string[];
  variants: CompareVariant[];
  /** Requests per run. */
  requests: number;
  /** Requests between samples. */
  step: number;
  concurrency: number;
  /** Where the load goes; the server must listen on its port. */
  url: URL;
  load: LoadSpec;
  /** Runs per variant. */
  repeat: number;
  /** The run directory (created; must be new or empty). */
  outDir: string;
  /** Bound on one run's load phase, ms (the run is still complete when it is reached). */
  durationMs: number;
  /** Bound on the server's start (until its port accepts connections), ms. */
  startTimeoutMs: number;
  /** Aborting it stops compare: the current run is kept as 'interrupted', later ones do not run. */
  signal?: AbortSignal;
  /** Progress lines for a person (one per run start and end). */
  progress?: (line: string) => void;
}

/** A file name for a run's samples: the label made safe, and the repetition. */
export function samplesFileName(label: string, repeat: number): string {
  return `${label.replace(/[^A-Za-z0-9_.-]+/g, '-')}.r${repeat + 1}.ndjson`;
}

/** Creates the run directory; EINVAL when it exists with files in it (a run owns its directory). */
export function prepareOutDir(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new AllocscopeError('EINVAL', `--out ${dir} already holds files; give a new or empty directory (a run directory holds one compare run).`, { dir });
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new AllocscopeError('EINVAL', `cannot create --out ${dir}: ${(error as Error).message}.`, { dir });
  }
}

function emptyRun(variant: CompareVariant, repeat: number): CompareVariantRun {
  return {
    label: variant.label,
    allocator: variant.allocator,
    env: { ...variant.env },
    repeat,
    status: 'failed',
    samplesFile: null,
    requestsAtSample: [],
    requestsCompleted: 0,
    requestsFailed: 0,
    requestsPerSecond: null,
    loadMs: 0,
    rssStartBytes: null,
    rssEndBytes: null,
    rssGrowthPer10kRequests: null,
    liveBytesEnd: null,
    totalOverheadEnd: null,
    externalFragEnd: null,
    verdict: null,
    verdictSummary: null,
  };
}

function errorOf(error: unknown): { code: string; message: string } {
  if (error instanceof AllocscopeError) return { code: error.code, message: error.message };
  return { code: 'EINVAL', message: (error as Error).message };
}

/**
 * Takes snapshots one at a time: a request while one is in flight is remembered and served when it
 * ends, with the count of that moment (the built-in load does not wait for samples).
 */
class Sampler {
  readonly samples: Snapshot[] = [];
  readonly requestsAtSample: number[] = [];
  private running: Promise<void> = Promise.resolve();
  private busy = false;
  private pending = false;
  private latestCount = 0;
  failures = 0;

  constructor(
    private readonly source: TargetSource,
    private readonly writer: SampleWriter,
  ) {}

  /** Requests a sample at `count` completed requests; resolves when it (or a later one) is taken. */
  request(count: number): Promise<void> {
    this.latestCount = count;
    if (this.busy) {
      this.pending = true;
      return this.running;
    }
    this.busy = true;
    this.running = this.loop();
    return this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.pending = false;
      const count = this.latestCount;
      try {
        const snapshot = await this.source.read();
        this.writer.write(snapshot);
        this.samples.push(snapshot);
        this.requestsAtSample.push(count);
      } catch {
        // The server is gone or its agent did not answer in time: the run's end says which.
        this.failures++;
      }
    } while (this.pending);
    this.busy = false;
  }

  /** Resolves when no sample is in flight. */
  idle(): Promise<void> {
    return this.running;
  }
}

async function stopQuietly(server: StartedServer): Promise<void> {
  await server.stop().catch(() => undefined);
}

/** One run of one variant: everything it collected, whatever happened. */
async function runVariant(options: CompareOptions, variant: CompareVariant, repeat: number, stopAll: AbortSignal): Promise<CompareVariantRun> {
  const run = emptyRun(variant, repeat);
  const missing = missingLibrary(variant);
  if (missing !== null) {
    return { ...run, status: 'skipped', error: { code: 'ENOALLOCATOR', message: missing } };
  }
  let server: StartedServer;
  try {
    server = await startServer(variant, options.command, options.url, options.startTimeoutMs, stopAll);
  } catch (error) {
    const status = stopAll.aborted ? 'interrupted' : 'failed';
    return { ...run, status, error: errorOf(error) };
  }
  let writer: SampleWriter | null = null;
  let source: TargetSource | null = null;
  try {
    source = await openTarget(server.pid);
    run.samplesFile = samplesFileName(variant.label, repeat);
    writer = new SampleWriter(join(options.outDir, run.samplesFile));
    const sampler = new Sampler(source, writer);
    await sampler.request(0);

    // The load stops when compare is stopped or when the server ends (it crashed).
    const loadAbort = new AbortController();
    const onStop = () => loadAbort.abort();
    stopAll.addEventListener('abort', onStop, { once: true });
    void server.exited.then(() => loadAbort.abort());
    const loadOptions: LoadOptions = {
      url: options.url,
      requests: options.requests,
      step: options.step,
      concurrency: options.concurrency,
      deadline: performance.now() + options.durationMs,
      signal: loadAbort.signal,
      onStep: (completed) => sampler.request(completed),
    };
    let load: LoadResult;
    try {
      load = options.load.kind === 'builtin' ? await builtinLoad(loadOptions) : await commandLoad(options.load, loadOptions);
    } finally {
      stopAll.removeEventListener('abort', onStop);
    }
    await sampler.idle();
    // A crash shows first as failed requests; give its exit a moment to arrive, to name it.
    if (load.endedBy !== 'done' && load.endedBy !== 'deadline') await Promise.race([server.exited, new Promise((resolve) => setTimeout(resolve, 300))]);
    const crashed = server.exit();
    if (crashed === null && sampler.requestsAtSample[sampler.requestsAtSample.length - 1] !== load.completed) await sampler.request(load.completed);

    run.requestsAtSample = sampler.requestsAtSample;
    run.requestsCompleted = load.completed;
    run.requestsFailed = load.failed;
    run.loadMs = load.elapsedMs;
    run.requestsPerSecond = load.elapsedMs > 0 && load.completed > 0 ? load.completed / (load.elapsedMs / 1000) : null;
    Object.assign(run, runFigures(sampler.samples, sampler.requestsAtSample));
    if (stopAll.aborted) {
      run.status = 'interrupted';
      run.error = { code: 'ECANCELED', message: `compare was interrupted after ${load.completed} requests of this run; its samples are kept.` };
    } else if (crashed !== null) {
      run.error = { code: 'ESRCH', message: exitSentence(crashed, server.stderrTail(), `during the load, after ${load.completed} requests`) };
    } else if (load.error !== null) {
      run.error = { code: load.error.code, message: load.error.message };
    } else {
      // The load is done: however the server ends now, the run is complete (some servers exit
      // non-zero on SIGTERM).
      run.status = 'complete';
    }
    return run;
  } catch (error) {
    return { ...run, status: stopAll.aborted ? 'interrupted' : 'failed', error: errorOf(error) };
  } finally {
    writer?.close();
    // A compare of many variants and repeats opens one source per run: each lets its /proc files go.
    source?.close();
    await stopQuietly(server);
  }
}

/** Runs every variant `repeat` times (repetition by repetition, so drift spreads over all). */
export async function runCompare(options: CompareOptions): Promise<CompareSummary> {
  prepareOutDir(options.outDir);
  const stopAll = options.signal ?? new AbortController().signal;
  const summary: CompareSummary = {
    version: COMPARE_SUMMARY_VERSION,
    command: [...options.command],
    startedAt: new Date().toISOString(),
    finishedAt: null,
    requestsPlanned: options.requests,
    step: options.step,
    concurrency: options.concurrency,
    load: loadName(options.load),
    repeatCount: options.repeat,
    runs: [],
    ranking: [],
    variants: aggregateRuns(options.variants, []),
    url: options.url.href,
    endedBy: 'done',
  };
  writeCompareSummary(options.outDir, summary);
  const progress = options.progress ?? (() => undefined);
  // The demo bounds runs by time alone (a huge count); say whichever bound will end the run.
  const plan = options.requests >= 100_000_000 ? `${formatDuration(options.durationMs)} of load` : `${options.requests} requests (at most ${formatDuration(options.durationMs)})`;
  outer: for (let repeat = 0; repeat < options.repeat; repeat++) {
    for (const variant of options.variants) {
      if (stopAll.aborted) break outer;
      const which = options.repeat > 1 ? ` (run ${repeat + 1} of ${options.repeat})` : '';
      if (missingLibrary(variant) === null) progress(`${variant.label}${which}: starting the server, then ${plan} ...`);
      const run = await runVariant(options, variant, repeat, stopAll);
      summary.runs.push(run);
      summary.variants = aggregateRuns(options.variants, summary.runs);
      summary.ranking = rankVariants(summary.variants);
      writeCompareSummary(options.outDir, summary);
      progress(`${variant.label}${which}: ${run.status}${run.error === undefined ? '' : ` - ${run.error.message}`}`);
    }
  }
  summary.endedBy = stopAll.aborted ? 'interrupted' : 'done';
  summary.finishedAt = new Date().toISOString();
  writeCompareSummary(options.outDir, summary);
  return summary;
}
