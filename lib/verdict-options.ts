/**
 * The thresholds of diagnose(), in one place, and their checks. Every verdict pairs a ratio with
 * an absolute floor and a minimum size, as Redis' MEMORY DOCTOR does (references/metrics.md §1.3:
 * a ratio above 1.1 *and* more than 10 MiB; nothing at all below 5 MiB of memory), so a tiny
 * process or a short window never produces a scary-looking verdict.
 */
import type { ReleaseResult } from './allocators/types';
import { AllocscopeError, checkInteger, checkNumber, describe } from './errors';

const MiB = 1024 * 1024;
/** The largest byte count a double holds exactly. */
export const MAX_BYTES = Number.MAX_SAFE_INTEGER;

export interface DiagnoseThresholds {
  /**
   * Fewest snapshots (per series) before anything is judged. 10: Theil-Sen over 45 pairs, enough
   * that two or three odd samples (a GC, a burst) cannot carry the slope. Default 10.
   */
  minSamples: number;
  /**
   * Shortest window, first to last snapshot, in ms. A minute is longer than V8's GC cycles and
   * most request bursts at service load; shorter windows mostly see those. Default 60,000.
   */
  minWindowMs: number;
  /** Below this much memory (the highest RSS in the window; allocated when RSS is unknown) the verdict is insufficient-data (Redis: 5 MiB). Default 5 MiB. */
  minLevelBytes: number;
  /** A series grows only if its fitted growth over the window exceeds this (Redis: 10 MiB). Default 10 MiB. */
  minGrowthBytes: number;
  /** ... and exceeds this share of its own level at the start of the window (Redis: ratio 1.1). Default 0.1. */
  minGrowthRatio: number;
  /** ... and rises at least this fast. 256 KiB/min is 360 MiB a day. Default 256 KiB. */
  minGrowthBytesPerMinute: number;
  /**
   * ... and at least this share of the pairwise slopes rise with it (1 = every pair of samples
   * agrees; 0.5 = a coin toss). 0.7 is Kendall's tau 0.4. Default 0.7.
   */
  minSignAgreement: number;
  /**
   * Retention needs at least this share of the RSS growth to be neither live bytes nor V8's
   * committed heap. Default 0.5.
   */
  minUnexplainedShare: number;
  /** A snapshot ratio is notable above this ratio ... (Redis MEMORY DOCTOR: 1.1). Default 1.1. */
  notableRatio: number;
  /** ... and above this many bytes (Redis MEMORY DOCTOR: 10 MiB). Default 10 MiB. */
  notableRatioBytes: number;
  /**
   * glibc arenas "multiply" from this count on, and MALLOC_ARENA_MAX=2 becomes a remedy. glibc
   * allows 8 per core on 64-bit; 2 arenas keep contention cheap for most services. Default 4.
   */
  manyArenas: number;
}

export interface DiagnoseOptions extends Partial<DiagnoseThresholds> {
  /**
   * How many glibc arenas the process has, when the caller knows (e.g. from a /proc/PID/maps
   * classifier: 64 MiB-aligned heaps plus the main one). Unknown by default.
   */
  arenaCount?: number | null;
  /** The result of a purge() the caller tried, so the purge remedy can say what it returned. */
  release?: ReleaseResult | null;
}

export const DEFAULT_THRESHOLDS: Readonly<DiagnoseThresholds> = Object.freeze({
  minSamples: 10,
  minWindowMs: 60_000,
  minLevelBytes: 5 * MiB,
  minGrowthBytes: 10 * MiB,
  minGrowthRatio: 0.1,
  minGrowthBytesPerMinute: 256 * 1024,
  minSignAgreement: 0.7,
  minUnexplainedShare: 0.5,
  notableRatio: 1.1,
  notableRatioBytes: 10 * MiB,
  manyArenas: 4,
});

export interface ResolvedOptions {
  thresholds: DiagnoseThresholds;
  arenaCount: number | null;
  release: ReleaseResult | null;
}

/** [min, max, whole number] for each threshold. */
const LIMITS: Record<keyof DiagnoseThresholds, [number, number, boolean]> = {
  minSamples: [3, 1_000_000, true],
  minWindowMs: [0, 10 * 365 * 86_400_000, false],
  minLevelBytes: [0, MAX_BYTES, false],
  minGrowthBytes: [0, MAX_BYTES, false],
  minGrowthRatio: [0, 1_000_000, false],
  minGrowthBytesPerMinute: [0, MAX_BYTES, false],
  minSignAgreement: [0.5, 1, false],
  minUnexplainedShare: [0, 1, false],
  notableRatio: [1, 1_000_000, false],
  notableRatioBytes: [0, MAX_BYTES, false],
  manyArenas: [2, 1_000_000, true],
};

const OTHER_KEYS = ['arenaCount', 'release'] as const;

function checkRelease(release: unknown): ReleaseResult {
  const r = release as Record<string, unknown>;
  const fields = ['rssBeforeBytes', 'rssAfterBytes', 'returnedBytes'];
  if (typeof release !== 'object' || release === null || fields.some((f) => typeof r[f] !== 'number' || !Number.isFinite(r[f])) || typeof r.action !== 'string') {
    throw new AllocscopeError(
      'EINVAL',
      `diagnose option release must be the object purge() returned (action, rssBeforeBytes, rssAfterBytes, returnedBytes); got ${describe(release)}.`,
      { name: 'release' },
    );
  }
  return release as ReleaseResult;
}

/** Defaults merged with the caller's options; EINVAL with a sentence for anything unusable. */
export function resolveOptions(options: unknown): ResolvedOptions {
  if (options === undefined) return { thresholds: { ...DEFAULT_THRESHOLDS }, arenaCount: null, release: null };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new AllocscopeError('EINVAL', `diagnose options must be an object like { minWindowMs: 60000 }; got ${describe(options)}.`);
  }
  const given = options as Record<string, unknown>;
  const known = [...Object.keys(LIMITS), ...OTHER_KEYS];
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) {
      throw new AllocscopeError('EINVAL', `diagnose has no option ${JSON.stringify(key)}; it knows ${known.join(', ')}.`, { name: key });
    }
  }
  const thresholds = { ...DEFAULT_THRESHOLDS };
  for (const key of Object.keys(LIMITS) as (keyof DiagnoseThresholds)[]) {
    const value = given[key];
    if (value === undefined) continue;
    const [min, max, whole] = LIMITS[key];
    thresholds[key] = whole ? checkInteger(key, value, min, max) : checkNumber(key, value, min, max);
  }
  const arenaCount = given.arenaCount === undefined || given.arenaCount === null ? null : checkInteger('arenaCount', given.arenaCount, 1, 1_000_000);
  const release = given.release === undefined || given.release === null ? null : checkRelease(given.release);
  return { thresholds, arenaCount, release };
}
