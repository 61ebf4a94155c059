/**
 * The figures of a compare run: per run from its samples (RSS at start and end, the robust slope
 * of RSS against requests, the last sample's live bytes and ratios, the verdict), then per variant
 * over its complete runs (medians and [min, max] spread) and the ranking.
 */
import type { Snapshot } from '../snapshot';
import { median } from '../stats/median';
import { theilSen } from '../stats/theil-sen';
import { diagnose, type VerdictKind } from '../verdict';
import type { CompareVariantAggregate, CompareVariantRun } from './summary';
import type { CompareVariant } from './variants';

/**
 * diagnose() asks for a minute of samples by default, to see past GC cycles and bursts of a
 * production process. Under compare the load is steady and known, and there is no GC in most
 * servers compared, so 10 s of samples is enough to tell growth from noise (its other floors,
 * 10 MiB and 10% of growth with 70% of pairs agreeing, still apply).
 */
export const COMPARE_VERDICT_WINDOW_MS = 10_000;

export type RunFigures = Pick<
  CompareVariantRun,
  'rssStartBytes' | 'rssEndBytes' | 'rssGrowthPer10kRequests' | 'liveBytesEnd' | 'totalOverheadEnd' | 'externalFragEnd' | 'verdict' | 'verdictSummary'
>;

/** The figures of one run from its samples and the requests completed at each. */
export function runFigures(samples: readonly Snapshot[], requestsAtSample: readonly number[]): RunFigures {
  const first = samples[0];
  const last = samples[samples.length - 1];
  const points = samples.flatMap((s, i) => (s.processBytes.rss === null ? [] : [{ x: requestsAtSample[i], y: s.processBytes.rss }]));
  const fit = theilSen(points);
  const verdict = samples.length === 0 ? null : diagnose(samples, { minWindowMs: COMPARE_VERDICT_WINDOW_MS });
  return {
    rssStartBytes: first?.processBytes.rss ?? null,
    rssEndBytes: last?.processBytes.rss ?? null,
    rssGrowthPer10kRequests: fit === null ? null : fit.slope * 10_000,
    liveBytesEnd: last?.allocatorBytes.allocated ?? null,
    totalOverheadEnd: last?.ratios.totalOverhead?.ratio ?? null,
    externalFragEnd: last?.ratios.externalFrag?.ratio ?? null,
    verdict: verdict?.kind ?? null,
    verdictSummary: verdict?.summary ?? null,
  };
}

function medianOf(values: ReadonlyArray<number | null>): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : median(known);
}

function spreadOf(values: ReadonlyArray<number | null>): [number, number] | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : [Math.min(...known), Math.max(...known)];
}

function mostFrequent(verdicts: ReadonlyArray<VerdictKind | null>): VerdictKind | null {
  const known = verdicts.filter((v): v is VerdictKind => v !== null);
  let best: VerdictKind | null = null;
  let bestCount = 0;
  for (const v of known) {
    const n = known.filter((k) => k === v).length;
    if (n > bestCount) [best, bestCount] = [v, n];
  }
  return best;
}

/** One entry per variant, in the given order, over its complete runs; the first is the baseline. */
export function aggregateRuns(variants: readonly CompareVariant[], runs: readonly CompareVariantRun[]): CompareVariantAggregate[] {
  const aggregates = variants.map((variant): CompareVariantAggregate => {
    const complete = runs.filter((r) => r.label === variant.label && r.status === 'complete');
    const pick = (f: (r: CompareVariantRun) => number | null) => complete.map(f);
    return {
      label: variant.label,
      allocator: variant.allocator,
      completeRuns: complete.length,
      rssStartBytes: medianOf(pick((r) => r.rssStartBytes)),
      rssEndBytes: medianOf(pick((r) => r.rssEndBytes)),
      rssGrowthPer10kRequests: medianOf(pick((r) => r.rssGrowthPer10kRequests)),
      liveBytesEnd: medianOf(pick((r) => r.liveBytesEnd)),
      totalOverheadEnd: medianOf(pick((r) => r.totalOverheadEnd)),
      externalFragEnd: medianOf(pick((r) => r.externalFragEnd)),
      requestsPerSecond: medianOf(pick((r) => r.requestsPerSecond)),
      rssEndVsBaseline: null,
      spread: {
        rssEndBytes: spreadOf(pick((r) => r.rssEndBytes)),
        rssGrowthPer10kRequests: spreadOf(pick((r) => r.rssGrowthPer10kRequests)),
        requestsPerSecond: spreadOf(pick((r) => r.requestsPerSecond)),
      },
      verdict: mostFrequent(complete.map((r) => r.verdict)),
    };
  });
  const baseline = aggregates[0]?.rssEndBytes ?? null;
  for (const a of aggregates) {
    a.rssEndVsBaseline = a.rssEndBytes !== null && baseline !== null && baseline > 0 ? a.rssEndBytes / baseline : null;
  }
  return aggregates;
}

/**
 * Variant labels, lowest median RSS growth per 10k requests first (the contract of
 * CompareSummary.ranking); variants without a complete run are left out. Ties: lower RSS at the end.
 */
export function rankVariants(aggregates: readonly CompareVariantAggregate[]): string[] {
  return aggregates
    .filter((a) => a.rssGrowthPer10kRequests !== null)
    .sort((a, b) => (a.rssGrowthPer10kRequests as number) - (b.rssGrowthPer10kRequests as number) || (a.rssEndBytes ?? 0) - (b.rssEndBytes ?? 0))
    .map((a) => a.label);
}
