/**
 * One memory series over a window (live bytes, RSS, V8 heap) as a robust trend: its Theil-Sen
 * slope in bytes per second, per minute and per 1000 samples, the fit quality, the growth over
 * the window, and which of the verdict floors it clears (ratio, absolute bytes, rate, fit).
 */
import { formatBytes, formatDuration, formatPercent, formatRate } from './report/format';
import type { Snapshot } from './snapshot';
import { median } from './stats/median';
import { type Point, theilSen } from './stats/theil-sen';
import type { DiagnoseThresholds } from './verdict-options';

export type SeriesName = 'allocated' | 'rss' | 'heapUsed' | 'heapTotal' | 'external';

export const SERIES_NAMES: readonly SeriesName[] = ['allocated', 'rss', 'heapUsed', 'heapTotal', 'external'];

export const SERIES_LABELS: Readonly<Record<SeriesName, string>> = {
  allocated: 'live bytes (allocated)',
  rss: 'RSS',
  heapUsed: 'V8 heapUsed',
  heapTotal: 'V8 heapTotal',
  external: 'V8 external (Buffers, addons)',
};

/** The value of one series in a snapshot; null when the source cannot tell. */
export function seriesValue(snapshot: Snapshot, name: SeriesName): number | null {
  switch (name) {
    case 'allocated':
      return snapshot.allocatorBytes.allocated;
    case 'rss':
      return snapshot.processBytes.rss;
    default:
      return snapshot.v8Bytes?.[name] ?? null;
  }
}

/** A floor a growing series must clear; a trend lists those it did not. */
export type GrowthFloor = 'rising' | 'fit' | 'rate' | 'bytes' | 'ratio';

export interface TrendFit {
  /** Share of pairwise slopes with the sign of the fitted slope (1 = all agree, 0.5 = no trend). */
  signAgreement: number;
  /** Median absolute residual around the fitted line, bytes. */
  residualMadBytes: number;
  /** Pairs of samples the slope is the median of. */
  pairs: number;
}

export interface Trend {
  series: SeriesName;
  /** Snapshots in the window that carry this series. */
  samples: number;
  /** First to last of those snapshots, ms. */
  spanMs: number;
  slopeBytesPerSecond: number;
  slopeBytesPerMinute: number;
  /** The slope times the median sampling interval times 1000. */
  slopeBytesPer1000Samples: number;
  /** The fitted line at the first and last sample, bytes. */
  startBytes: number;
  endBytes: number;
  /** The value in the latest snapshot that carries this series. */
  latestBytes: number;
  /** endBytes - startBytes: growth over the window by the fit, not by two noisy endpoints. */
  growthBytes: number;
  /** growthBytes / startBytes; null when the fitted start is not positive. */
  growthRatio: number | null;
  fit: TrendFit;
  /** True when every floor is cleared. */
  growing: boolean;
  /** The floors not cleared (empty when growing). */
  missedFloors: GrowthFloor[];
  sentence: string;
}

/** Snapshots sorted by monotonicNs; the first one's clock is the origin. */
export interface WindowClock {
  originNs: number;
  /** Median interval between consecutive snapshots, seconds. */
  medianIntervalSeconds: number;
}

function missedFloors(slope: number, growth: number, ratio: number | null, agreement: number, t: DiagnoseThresholds): GrowthFloor[] {
  const missed: GrowthFloor[] = [];
  if (!(slope > 0)) missed.push('rising');
  if (agreement < t.minSignAgreement) missed.push('fit');
  if (slope * 60 < t.minGrowthBytesPerMinute) missed.push('rate');
  if (growth < t.minGrowthBytes) missed.push('bytes');
  // A fitted start at or below zero: any growth is infinitely large against it.
  if (ratio !== null && ratio < t.minGrowthRatio) missed.push('ratio');
  return missed;
}

const FLOOR_WORDS: Record<GrowthFloor, (t: DiagnoseThresholds) => string> = {
  rising: () => 'it does not rise',
  fit: (t) => `fewer than ${formatPercent(t.minSignAgreement)} of sample pairs rise`,
  rate: (t) => `slower than ${formatRate(t.minGrowthBytesPerMinute, 'min')}`,
  bytes: (t) => `less than ${formatBytes(t.minGrowthBytes)} over the window`,
  ratio: (t) => `less than ${formatPercent(t.minGrowthRatio)} of its level`,
};

function sentenceFor(trend: Omit<Trend, 'sentence'>, t: DiagnoseThresholds): string {
  const label = SERIES_LABELS[trend.series];
  const change = trend.growthRatio === null ? '' : `, ${trend.growthBytes >= 0 ? '+' : ''}${formatPercent(trend.growthRatio)}`;
  const head =
    `${label}: ${formatRate(trend.slopeBytesPerSecond, 's')} (${formatRate(trend.slopeBytesPerMinute, 'min')}, ` +
    `${formatBytes(trend.slopeBytesPer1000Samples)} per 1000 samples); ${trend.growthBytes >= 0 ? 'grew' : 'changed'} ` +
    `${formatBytes(trend.growthBytes)} over ${formatDuration(trend.spanMs)} (${formatBytes(trend.startBytes)} -> ` +
    `${formatBytes(trend.endBytes)}${change}, latest ${formatBytes(trend.latestBytes)})`;
  const fit = `fit: ${formatPercent(trend.fit.signAgreement)} of ${trend.fit.pairs} sample pairs agree, residual MAD ${formatBytes(trend.fit.residualMadBytes)}, ${trend.samples} samples`;
  const verdict = trend.growing ? 'growing' : `not growing: ${trend.missedFloors.map((f) => FLOOR_WORDS[f](t)).join('; ')}`;
  return `${head}; ${fit}; ${verdict}.`;
}

/**
 * The trend of `name` over sorted snapshots; null when fewer than minSamples carry it or they
 * share one timestamp.
 */
export function trendOf(name: SeriesName, sorted: readonly Snapshot[], clock: WindowClock, t: DiagnoseThresholds): Trend | null {
  const points: Point[] = [];
  let latestBytes = 0;
  for (const snapshot of sorted) {
    const value = seriesValue(snapshot, name);
    if (value === null) continue;
    points.push({ x: (snapshot.monotonicNs - clock.originNs) / 1e9, y: value });
    latestBytes = value;
  }
  if (points.length < t.minSamples) return null;
  const fit = theilSen(points);
  if (fit === null) return null;
  const firstX = points[0].x;
  const lastX = points[points.length - 1].x;
  const startBytes = fit.intercept + fit.slope * firstX;
  const endBytes = fit.intercept + fit.slope * lastX;
  const growthBytes = fit.slope * (lastX - firstX);
  const growthRatio = startBytes > 0 ? growthBytes / startBytes : null;
  const missed = missedFloors(fit.slope, growthBytes, growthRatio, fit.signAgreement, t);
  const trend: Omit<Trend, 'sentence'> = {
    series: name,
    samples: points.length,
    spanMs: (lastX - firstX) * 1000,
    slopeBytesPerSecond: fit.slope,
    slopeBytesPerMinute: fit.slope * 60,
    slopeBytesPer1000Samples: fit.slope * clock.medianIntervalSeconds * 1000,
    startBytes,
    endBytes,
    latestBytes,
    growthBytes,
    growthRatio,
    fit: { signAgreement: fit.signAgreement, residualMadBytes: fit.residualMad, pairs: fit.pairs },
    growing: missed.length === 0,
    missedFloors: missed,
  };
  return { ...trend, sentence: sentenceFor(trend, t) };
}

/** The clock of a sorted window: its origin and median sampling interval. */
export function windowClock(sorted: readonly Snapshot[]): WindowClock {
  const intervals: number[] = [];
  for (let i = 1; i < sorted.length; i++) intervals.push((sorted[i].monotonicNs - sorted[i - 1].monotonicNs) / 1e9);
  return { originNs: sorted.length > 0 ? sorted[0].monotonicNs : 0, medianIntervalSeconds: intervals.length > 0 ? median(intervals) : 0 };
}
