/**
 * The run directory that `allocscope compare` writes and `allocscope report` reads: the contract
 * between the two. One home for its shape.
 *
 *   DIR/summary.json          a CompareSummary (rewritten after every variant, so a run stopped
 *                             half-way still describes what it collected)
 *   DIR/<samplesFile>         per variant run: bare Snapshots (schema v1), one per line, streamed
 *                             by report/sample-writer.ts exactly as `profile-pid --out` writes them
 *
 * `requestsAtSample[i]` is the number of requests completed when line i of `samplesFile` was
 * sampled, so a report can plot memory against requests (the seed's graph) rather than time.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AllocscopeError } from '../errors';
import type { AllocatorName } from '../snapshot';
import type { VerdictKind } from '../verdict';

/** Bumped on any incompatible change of CompareSummary. */
export const COMPARE_SUMMARY_VERSION = 1;

/** The file name of the summary inside a run directory. */
export const COMPARE_SUMMARY_FILE = 'summary.json';

export type CompareRunStatus =
  /** The load finished; the server may have exited non-zero while being stopped (still complete). */
  | 'complete'
  /** The server did not start, crashed during the load, or the load failed: `error` says which. */
  | 'failed'
  /** The user stopped compare (Ctrl-C) during this run: samples up to then are kept. */
  | 'interrupted'
  /** Not run: its allocator library is not installed (`error.message` names the Debian package). */
  | 'skipped';

export interface CompareVariantRun {
  /** As given to --allocators, e.g. 'glibc', 'jemalloc', 'glibc:MALLOC_ARENA_MAX=2'. */
  label: string;
  allocator: AllocatorName;
  /** Extra environment of this variant (from `label`'s `:K=V` part). */
  env: Record<string, string>;
  /** 0-based repetition index (with --repeat N: 0 … N-1). */
  repeat: number;
  status: CompareRunStatus;
  error?: { code: string; message: string };
  /** Relative to the run directory; null when no sample was taken. */
  samplesFile: string | null;
  /** Requests completed at each sample (same length as the samples file's lines). */
  requestsAtSample: number[];
  requestsCompleted: number;
  requestsFailed: number;
  /** Completed requests per second of load phase; null when no load ran. */
  requestsPerSecond: number | null;
  /** Wall time of the load phase alone, ms. */
  loadMs: number;
  rssStartBytes: number | null;
  rssEndBytes: number | null;
  /** Robust (Theil-Sen) slope of RSS against requests, bytes per 10,000 requests. */
  rssGrowthPer10kRequests: number | null;
  /** The allocator's live bytes (allocated) at the last sample; null below the agent level. */
  liveBytesEnd: number | null;
  /** Ratios of the last sample (Snapshot.ratios values), null where unknown. */
  totalOverheadEnd: number | null;
  externalFragEnd: number | null;
  /** diagnose() over this run's samples (x = time). */
  verdict: VerdictKind | null;
  verdictSummary: string | null;
}

export interface CompareSummary {
  version: typeof COMPARE_SUMMARY_VERSION;
  /** The server command, as an argv array. */
  command: string[];
  startedAt: string;
  finishedAt: string | null;
  requestsPlanned: number;
  step: number;
  concurrency: number;
  /** 'builtin', 'ab', 'wrk' or the user's load command. */
  load: string;
  repeatCount: number;
  runs: CompareVariantRun[];
  /** Variant labels, lowest median RSS growth per 10k requests first (complete runs only). */
  ranking: string[];
  /** Optional (added after version 1's first shape): one entry per variant, in --allocators order. */
  variants?: CompareVariantAggregate[];
  /** Optional: the URL the load was sent to. */
  url?: string;
  /** Optional: 'done', or 'interrupted' (Ctrl-C stopped compare; the runs so far are kept). */
  endedBy?: 'done' | 'interrupted';
}

/** The per-run figures an aggregate gives the median of. */
export type AggregatedFigures = Pick<
  CompareVariantRun,
  'rssStartBytes' | 'rssEndBytes' | 'rssGrowthPer10kRequests' | 'liveBytesEnd' | 'totalOverheadEnd' | 'externalFragEnd' | 'requestsPerSecond'
>;

/** Across the complete runs of one variant (with --repeat N, N runs): medians (AggregatedFigures), and their spread. */
export interface CompareVariantAggregate extends AggregatedFigures {
  label: string;
  allocator: AllocatorName;
  /** Complete runs the figures are taken over (0: every figure is null). */
  completeRuns: number;
  /** Median RSS at the end / the first variant's (the baseline, usually plain glibc); null without both. */
  rssEndVsBaseline: number | null;
  /** [min, max] over the complete runs, null when there are none. */
  spread: {
    rssEndBytes: [number, number] | null;
    rssGrowthPer10kRequests: [number, number] | null;
    requestsPerSecond: [number, number] | null;
  };
  /** The most frequent verdict of the complete runs (ties: the first run's). */
  verdict: VerdictKind | null;
}

/**
 * Writes DIR/summary.json atomically (a temporary file renamed over it), so a reader never sees
 * half a summary even while compare rewrites it after every run.
 */
export function writeCompareSummary(dir: string, summary: CompareSummary): void {
  const path = join(dir, COMPARE_SUMMARY_FILE);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(summary, null, 2)}\n`);
  renameSync(temporary, path);
}

/** Reads DIR/summary.json; EINVAL when it is missing, not JSON, or of another version. */
export function readCompareSummary(dir: string): CompareSummary {
  const path = join(dir, COMPARE_SUMMARY_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new AllocscopeError('EINVAL', `${path} is not a compare summary (${(error as Error).message}); give the directory allocscope compare --out wrote.`, { path });
  }
  const summary = parsed as Partial<CompareSummary> | null;
  if (summary === null || typeof summary !== 'object' || summary.version !== COMPARE_SUMMARY_VERSION || !Array.isArray(summary.runs)) {
    throw new AllocscopeError('EINVAL', `${path} is not a version ${COMPARE_SUMMARY_VERSION} compare summary; it was written by another allocscope version.`, { path });
  }
  return summary as CompareSummary;
}
