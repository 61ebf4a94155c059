/**
 * diagnose(): a window of snapshots of one process -> why its memory grows, with the evidence
 * and what to try (DESIGN.md "Verdicts").
 *
 * The slopes of live bytes (allocator `allocated`), RSS and V8's heap over time decide it, each a
 * Theil-Sen fit that must clear a rate, an absolute size, a share of its own level and a fit
 * quality (verdict-options.ts holds every threshold):
 *   - live-growth:    live bytes rise (leak-like);
 *   - retention:      RSS rises, and at least half of the rise is neither live bytes nor V8's
 *                     committed heap: fragmentation, arenas, free pages the allocator keeps;
 *   - js-heap-growth: V8 heapUsed rises;
 *   - stable:         none of them rises past the floors;
 *   - insufficient-data: fewer than 10 snapshots, a window under a minute, a process under
 *                     5 MiB, or RSS growth that cannot be split because the allocator keeps no
 *                     live-bytes figure (mimalloc).
 * With the defaults a verdict needs 10 snapshots over at least 60 s (30 or more when samples
 * can be junk); growth must exceed 10 MiB, 10% of the series' level and 256 KiB/min, with 70% of
 * sample pairs rising. The labelled workloads in test/verdict.ts are classified within 12.
 * When several kinds are found, the verdict is the one that explains the most bytes; the others
 * are in `alsoSeen`.
 */
import type { ReleaseResult } from './allocators/types';
import { AllocscopeError, describe } from './errors';
import { formatBytes, formatDuration, formatPercent, formatRate, formatRatio } from './report/format';
import type { AllocatorName, Snapshot, SnapshotRatios } from './snapshot';
import { type DiagnoseOptions, type DiagnoseThresholds, MAX_BYTES, resolveOptions } from './verdict-options';
import { type Remedy, remediesFor } from './verdict-remedies';
import { SERIES_NAMES, type SeriesName, seriesValue, type Trend, trendOf, windowClock } from './verdict-trend';

export type VerdictKind = 'stable' | 'live-growth' | 'retention' | 'js-heap-growth' | 'insufficient-data';

export type InsufficientReason = 'too-few-samples' | 'window-too-short' | 'no-memory-figures' | 'too-little-memory' | 'live-bytes-unknown';

export interface WindowFacts {
  samples: number;
  /** First to last snapshot, ms (monotonic clock). */
  windowMs: number;
  medianIntervalMs: number;
  firstMonotonicNs: number;
  lastMonotonicNs: number;
}

/** How the RSS growth splits: live bytes, V8's committed heap, and the rest (held by the allocator). */
export interface Attribution {
  rssGrowthBytes: number;
  /** Growth of allocated, clamped at 0; null when the allocator keeps no such figure. */
  allocatedGrowthBytes: number | null;
  /** Growth of V8 heapTotal, clamped at 0; null outside Node. */
  v8HeapGrowthBytes: number | null;
  /** rssGrowth - allocatedGrowth - v8HeapGrowth; null when allocated is unknown. */
  unexplainedGrowthBytes: number | null;
  /** unexplained / rssGrowth; null when either is unknown or RSS did not grow. */
  unexplainedShare: number | null;
}

export type RatioName = keyof SnapshotRatios;

export type Evidence =
  | ({ kind: 'window'; key: 'window'; sentence: string } & WindowFacts)
  | { kind: 'trend'; key: `trend.${SeriesName}`; sentence: string; trend: Trend }
  | ({ kind: 'attribution'; key: 'attribution'; sentence: string } & Attribution)
  | { kind: 'ratio'; key: `ratio.${RatioName}`; sentence: string; name: RatioName; ratio: number; bytes: number; notable: boolean }
  | { kind: 'arenas'; key: 'arenas'; sentence: string; arenaCount: number }
  | { kind: 'release'; key: 'release'; sentence: string; release: ReleaseResult };

export interface Verdict {
  kind: VerdictKind;
  /** One or two sentences for a person. */
  summary: string;
  /** Other kinds of growth found in the same window (the verdict is the one explaining most bytes). */
  alsoSeen: VerdictKind[];
  /** Why the verdict is insufficient-data (empty otherwise). */
  insufficient: InsufficientReason[];
  /** The allocator serving malloc in the latest snapshot. */
  allocator: AllocatorName;
  window: WindowFacts;
  trends: Record<SeriesName, Trend | null>;
  attribution: Attribution | null;
  /** Every figure the verdict rests on, each with a sentence. */
  evidence: Evidence[];
  /** Cheapest first; each names the evidence keys that called for it. */
  remedies: Remedy[];
  /** What these snapshots cannot tell, and what would tell it. */
  unknowns: string[];
  /** The thresholds used (defaults merged with the options). */
  thresholds: DiagnoseThresholds;
}

export type { DiagnoseOptions, DiagnoseThresholds } from './verdict-options';
export { DEFAULT_THRESHOLDS } from './verdict-options';
export type { Remedy, RemedyCost, RemedyId } from './verdict-remedies';
export type { GrowthFloor, SeriesName, Trend, TrendFit } from './verdict-trend';

// ---------------------------------------------------------------------------------------------
// Input checks: a history is snapshots of one process; byte figures are null or byte counts.

function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw new AllocscopeError('EINVAL', message, details);
}

function checkBytes(where: string, value: unknown): void {
  if (value === null) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_BYTES) {
    invalid(`${where} must be null or a byte count from 0 to 2^53; got ${describe(value)}.`, { where, value });
  }
}

function checkObject(where: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(`${where} must be an object; got ${describe(value)}.`, { where });
  return value as Record<string, unknown>;
}

function checkSnapshot(value: unknown, index: number): void {
  const at = `history[${index}]`;
  const s = checkObject(at, value);
  if (typeof s.monotonicNs !== 'number' || !Number.isFinite(s.monotonicNs) || s.monotonicNs < 0) {
    invalid(`${at}.monotonicNs must be a non-negative number of nanoseconds; got ${describe(s.monotonicNs)}.`, { where: `${at}.monotonicNs` });
  }
  checkBytes(`${at}.allocatorBytes.allocated`, checkObject(`${at}.allocatorBytes`, s.allocatorBytes).allocated);
  checkBytes(`${at}.processBytes.rss`, checkObject(`${at}.processBytes`, s.processBytes).rss);
  if (s.v8Bytes !== null && s.v8Bytes !== undefined) {
    const v8 = checkObject(`${at}.v8Bytes`, s.v8Bytes);
    for (const name of ['heapUsed', 'heapTotal', 'external']) checkBytes(`${at}.v8Bytes.${name}`, v8[name] ?? null);
  }
  const allocator = checkObject(`${at}.allocator`, s.allocator);
  if (typeof allocator.name !== 'string') invalid(`${at}.allocator.name must be a string; got ${describe(allocator.name)}.`);
  const ratios = checkObject(`${at}.ratios`, s.ratios);
  for (const [name, ratio] of Object.entries(ratios)) {
    if (ratio === null || ratio === undefined) continue;
    const r = checkObject(`${at}.ratios.${name}`, ratio);
    if (typeof r.ratio !== 'number' || !Number.isFinite(r.ratio) || typeof r.bytes !== 'number' || !Number.isFinite(r.bytes)) {
      invalid(`${at}.ratios.${name} must be null or { ratio, bytes } with finite numbers.`, { where: `${at}.ratios.${name}` });
    }
  }
}

function checkHistory(history: unknown): readonly Snapshot[] {
  if (!Array.isArray(history)) invalid(`diagnose needs an array of snapshots (oldest to newest or in any order); got ${describe(history)}.`);
  history.forEach(checkSnapshot);
  const pids = new Set((history as Snapshot[]).map((s) => s.pid));
  if (pids.size > 1) {
    invalid(`diagnose judges one process at a time; this history mixes pids ${[...pids].slice(0, 4).join(', ')}.`, { pids: [...pids] });
  }
  return history as readonly Snapshot[];
}

// ---------------------------------------------------------------------------------------------
// Order: by the monotonic clock; ties broken by the figures themselves, so any permutation of
// the same snapshots gives the same verdict.

function compareNullable(a: number | null | undefined, b: number | null | undefined): number {
  const x = a ?? -1;
  const y = b ?? -1;
  return x - y;
}

function compareSnapshots(a: Snapshot, b: Snapshot): number {
  const byClock = a.monotonicNs - b.monotonicNs;
  if (byClock !== 0) return byClock;
  for (const name of SERIES_NAMES) {
    const order = compareNullable(seriesValue(a, name), seriesValue(b, name));
    if (order !== 0) return order;
  }
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------

const RATIO_MEANINGS: Record<RatioName, string> = {
  externalFrag: 'active/allocated: free space inside pages held for size classes',
  allocatorRetention: 'resident/active: free pages the allocator keeps resident',
  nonAllocatorRss: 'rss/resident: memory outside the allocator (V8, code, stacks)',
  totalOverhead: 'rss/allocated: everything above live bytes, not only fragmentation',
  smallBinFrag: 'jemalloc small-bin free regions / allocated',
  arenaFree: 'glibc mapped/allocated: free bytes inside the arenas',
};

/** Ratios that point at free memory a purge can return. */
const HELD_RATIOS: readonly RatioName[] = ['arenaFree', 'allocatorRetention'];

function ratioEvidence(latest: Snapshot, t: DiagnoseThresholds): Evidence[] {
  const out: Evidence[] = [];
  for (const name of Object.keys(RATIO_MEANINGS) as RatioName[]) {
    const r = latest.ratios[name];
    if (r === null || r === undefined) continue;
    const notable = r.ratio > t.notableRatio && r.bytes > t.notableRatioBytes;
    const flag = notable ? ` - above ${t.notableRatio} and ${formatBytes(t.notableRatioBytes)}` : '';
    out.push({
      kind: 'ratio',
      key: `ratio.${name}`,
      name,
      ratio: r.ratio,
      bytes: r.bytes,
      notable,
      sentence: `${name} ${formatRatio(r)} in the latest snapshot (${RATIO_MEANINGS[name]})${flag}.`,
    });
  }
  return out;
}

function attributionOf(trends: Record<SeriesName, Trend | null>): Attribution | null {
  const rss = trends.rss;
  if (rss === null) return null;
  const allocated = trends.allocated === null ? null : Math.max(0, trends.allocated.growthBytes);
  const v8 = trends.heapTotal === null ? null : Math.max(0, trends.heapTotal.growthBytes);
  const unexplained = allocated === null ? null : rss.growthBytes - allocated - (v8 ?? 0);
  const share = unexplained !== null && rss.growthBytes > 0 ? unexplained / rss.growthBytes : null;
  return { rssGrowthBytes: rss.growthBytes, allocatedGrowthBytes: allocated, v8HeapGrowthBytes: v8, unexplainedGrowthBytes: unexplained, unexplainedShare: share };
}

function attributionSentence(a: Attribution): string {
  const part = (label: string, bytes: number | null) => `${label} ${bytes === null ? 'unknown' : formatBytes(bytes)}`;
  const share = a.unexplainedShare === null ? '' : ` (${formatPercent(a.unexplainedShare)} of it)`;
  return (
    `RSS changed ${formatBytes(a.rssGrowthBytes)} over the window: ${part('live bytes', a.allocatedGrowthBytes)}, ` +
    `${part('V8 heap', a.v8HeapGrowthBytes)}, ${part('neither (held by the allocator or outside it)', a.unexplainedGrowthBytes)}${share}.`
  );
}

interface Classification {
  kind: VerdictKind;
  alsoSeen: VerdictKind[];
  insufficient: InsufficientReason[];
  /** True when no single series cleared its floors and the largest share of RSS growth named the kind. */
  byLargestShare: boolean;
}

function classify(trends: Record<SeriesName, Trend | null>, a: Attribution | null, t: DiagnoseThresholds): Classification {
  const grows = (trend: Trend | null) => trend?.growing === true;
  const found = new Map<VerdictKind, number>();
  if (grows(trends.allocated)) found.set('live-growth', trends.allocated!.growthBytes);
  if (grows(trends.heapUsed)) found.set('js-heap-growth', trends.heapUsed!.growthBytes);
  const unexplained = a?.unexplainedGrowthBytes ?? null;
  if (grows(trends.rss) && unexplained !== null && unexplained >= t.minGrowthBytes && (a?.unexplainedShare ?? 0) >= t.minUnexplainedShare) {
    found.set('retention', unexplained);
  }
  let byLargestShare = false;
  if (found.size === 0 && grows(trends.rss) && a !== null) {
    // RSS clears every floor but no one source does alone: name the largest share.
    byLargestShare = true;
    if (unexplained === null) {
      if ((a.v8HeapGrowthBytes ?? 0) * 2 < a.rssGrowthBytes) return { kind: 'insufficient-data', alsoSeen: [], insufficient: ['live-bytes-unknown'], byLargestShare };
      found.set('js-heap-growth', a.v8HeapGrowthBytes ?? 0);
    } else {
      const shares: [VerdictKind, number][] = [
        ['live-growth', a.allocatedGrowthBytes ?? 0],
        ['retention', unexplained],
        ['js-heap-growth', a.v8HeapGrowthBytes ?? 0],
      ];
      const [kind] = shares.reduce((best, next) => (next[1] > best[1] ? next : best));
      found.set(kind, 0);
    }
  }
  if (found.size === 0) return { kind: 'stable', alsoSeen: [], insufficient: [], byLargestShare };
  // The kind that explains the most bytes; ties in the order live, retention, JS heap.
  const order: VerdictKind[] = ['live-growth', 'retention', 'js-heap-growth'];
  const ranked = order.filter((k) => found.has(k)).sort((x, y) => found.get(y)! - found.get(x)! || order.indexOf(x) - order.indexOf(y));
  return { kind: ranked[0], alsoSeen: ranked.slice(1), insufficient: [], byLargestShare };
}

function insufficientReasons(sorted: readonly Snapshot[], window: WindowFacts, trends: Record<SeriesName, Trend | null>, t: DiagnoseThresholds): [InsufficientReason, string][] {
  const reasons: [InsufficientReason, string][] = [];
  if (sorted.length < t.minSamples) reasons.push(['too-few-samples', `${sorted.length} snapshots; a verdict needs at least ${t.minSamples}.`]);
  if (window.windowMs < t.minWindowMs) {
    reasons.push(['window-too-short', `the window spans ${formatDuration(window.windowMs)}; a verdict needs at least ${formatDuration(t.minWindowMs)}, longer than GC cycles and bursts.`]);
  }
  if (sorted.length >= t.minSamples && SERIES_NAMES.every((name) => trends[name] === null)) {
    reasons.push(['no-memory-figures', `no memory figure (RSS, live bytes, V8 heap) is known in ${t.minSamples} snapshots at distinct times.`]);
  }
  // A loop, not Math.max(...levels): spreading 200,000 values overflows the call stack.
  let level: number | null = null;
  for (const s of sorted) {
    const value = s.processBytes.rss ?? s.allocatorBytes.allocated;
    if (value !== null && (level === null || value > level)) level = value;
  }
  if (level !== null && level < t.minLevelBytes) {
    reasons.push(['too-little-memory', `the process uses very little memory (at most ${formatBytes(level)}, under ${formatBytes(t.minLevelBytes)}): ratios and slopes mean nothing at this size.`]);
  }
  return reasons;
}

function summaryOf(c: Classification, trends: Record<SeriesName, Trend | null>, a: Attribution | null, window: WindowFacts, reasons: string[], t: DiagnoseThresholds): string {
  const over = `over ${formatDuration(window.windowMs)} (${window.samples} samples)`;
  const growth = (trend: Trend | null) => (trend === null ? 'unknown' : `${formatBytes(trend.growthBytes)} (${formatRate(trend.slopeBytesPerMinute, 'min')})`);
  const also = c.alsoSeen.length > 0 ? ` Also seen: ${c.alsoSeen.join(', ')}.` : '';
  const mostly = c.byLargestShare ? ' No single source cleared its floors alone; this is the largest share of the RSS growth.' : '';
  switch (c.kind) {
    case 'insufficient-data':
      if (c.insufficient.includes('live-bytes-unknown')) {
        return `Insufficient data: RSS grew ${growth(trends.rss)} ${over}, but this allocator keeps no live-bytes figure, so a leak cannot be told from retention.`;
      }
      return `Insufficient data: ${reasons.join(' ')}`;
    case 'live-growth': {
      const rss = trends.rss?.growing === true ? `, and RSS rose ${growth(trends.rss)} with them` : '; RSS has not followed yet (the allocator is reusing memory it held)';
      return `Leak-like growth: live bytes rose ${growth(trends.allocated)} ${over}${rss}.${mostly}${also}`;
    }
    case 'retention':
      return (
        `Retention: RSS rose ${growth(trends.rss)} ${over} while live bytes changed ${growth(trends.allocated)}; ` +
        `${formatBytes(a?.unexplainedGrowthBytes ?? 0)} of it is memory the allocator holds (fragmentation, arenas, free pages not returned).${mostly}${also}`
      );
    case 'js-heap-growth':
      return `JS heap growth: V8 heapUsed rose ${growth(trends.heapUsed)} ${over}; RSS changed ${growth(trends.rss)}.${mostly}${also}`;
    case 'stable':
      return (
        `Stable ${over}: RSS ${growth(trends.rss)}, live bytes ${growth(trends.allocated)}, V8 heapUsed ${growth(trends.heapUsed)}; ` +
        `none grew past ${formatBytes(t.minGrowthBytes)}, ${formatPercent(t.minGrowthRatio)} of its level and ${formatRate(t.minGrowthBytesPerMinute, 'min')}.`
      );
  }
}

function unknownsOf(trends: Record<SeriesName, Trend | null>, allocator: AllocatorName, kinds: ReadonlySet<VerdictKind>, arenaCount: number | null, t: DiagnoseThresholds): string[] {
  const out: string[] = [];
  if (trends.allocated === null) {
    out.push(`Live bytes: fewer than ${t.minSamples} snapshots carry an allocated figure (${allocator} may keep none), so a leak cannot be told from retention.`);
  }
  if (trends.rss === null) out.push(`RSS: fewer than ${t.minSamples} snapshots carry one, so retention cannot be told.`);
  if (trends.heapUsed === null) out.push(`V8 heap: fewer than ${t.minSamples} snapshots carry V8 figures (not Node, or read from /proc), so JS heap growth cannot be told.`);
  if (kinds.has('retention') && allocator === 'glibc' && arenaCount === null) {
    out.push('glibc arena count not given: pass { arenaCount } (e.g. from a /proc/PID/maps classifier) to judge MALLOC_ARENA_MAX=2.');
  }
  return out;
}

/**
 * The glibc arena count of the latest snapshot that carries a /proc/PID/maps summary (procfs
 * levels: raw.maps.glibcArenaHeaps): the main arena plus one per 64 MiB-aligned arena heap
 * (glibc's HEAP_MAX_SIZE on 64-bit, arena.c). An arena that outgrew one heap chains a second, so
 * this can count an arena twice: an upper bound, which is the side MALLOC_ARENA_MAX=2 is judged on.
 * Null when no snapshot has the figure or the allocator is not glibc.
 */
function arenaCountFromMaps(sorted: readonly Snapshot[]): number | null {
  for (let i = sorted.length - 1; i >= 0; i--) {
    const s = sorted[i];
    const heaps = s.raw.maps?.glibcArenaHeaps;
    if (typeof heaps === 'number' && Number.isInteger(heaps) && heaps >= 0) return s.allocator.name === 'glibc' ? heaps + 1 : null;
  }
  return null;
}

/**
 * Classifies a window of snapshots of one process (any order; sorted by monotonicNs here).
 * Throws AllocscopeError EINVAL for options or snapshots it cannot use; otherwise always returns
 * a verdict, insufficient-data when the window cannot tell.
 */
export function diagnose(history: readonly Snapshot[], options?: DiagnoseOptions): Verdict {
  const { thresholds: t, arenaCount: givenArenaCount, release } = resolveOptions(options);
  const sorted = [...checkHistory(history)].sort(compareSnapshots);
  const counted = givenArenaCount === null ? arenaCountFromMaps(sorted) : null;
  const arenaCount = givenArenaCount ?? counted;
  const clock = windowClock(sorted);
  const first = sorted[0]?.monotonicNs ?? 0;
  const last = sorted[sorted.length - 1]?.monotonicNs ?? 0;
  const window: WindowFacts = {
    samples: sorted.length,
    windowMs: (last - first) / 1e6,
    medianIntervalMs: clock.medianIntervalSeconds * 1000,
    firstMonotonicNs: first,
    lastMonotonicNs: last,
  };
  const trends = Object.fromEntries(SERIES_NAMES.map((name) => [name, trendOf(name, sorted, clock, t)])) as Record<SeriesName, Trend | null>;
  const attribution = attributionOf(trends);
  const latest = sorted[sorted.length - 1] as Snapshot | undefined;
  const allocator = (latest?.allocator.name ?? 'unknown') as AllocatorName;

  const reasons = insufficientReasons(sorted, window, trends, t);
  const classification: Classification =
    reasons.length > 0 ? { kind: 'insufficient-data', alsoSeen: [], insufficient: reasons.map(([r]) => r), byLargestShare: false } : classify(trends, attribution, t);

  const evidence: Evidence[] = [
    {
      kind: 'window',
      key: 'window',
      ...window,
      sentence: `${window.samples} snapshots over ${formatDuration(window.windowMs)}, one every ${formatDuration(window.medianIntervalMs)} (median).`,
    },
  ];
  for (const name of SERIES_NAMES) {
    const trend = trends[name];
    if (trend !== null) evidence.push({ kind: 'trend', key: `trend.${name}`, sentence: trend.sentence, trend });
  }
  if (attribution !== null) evidence.push({ kind: 'attribution', key: 'attribution', ...attribution, sentence: attributionSentence(attribution) });
  const ratios = latest === undefined ? [] : ratioEvidence(latest, t);
  evidence.push(...ratios);
  if (arenaCount !== null) {
    const source = counted === null ? "the caller's count" : "from /proc/PID/maps: the main arena and each 64 MiB-aligned arena heap";
    evidence.push({ kind: 'arenas', key: 'arenas', arenaCount, sentence: `${arenaCount} malloc arenas (${source}).` });
  }
  if (release !== null) evidence.push({ kind: 'release', key: 'release', release, sentence: typeof release.note === 'string' && release.note !== '' ? release.note : `${release.action} returned ${formatBytes(release.returnedBytes)}.` });

  const kinds = new Set<VerdictKind>([classification.kind, ...classification.alsoSeen]);
  const notable = (names: readonly RatioName[]) =>
    ratios.filter((e) => e.kind === 'ratio' && e.notable && names.includes(e.name)).map((e) => e.key);
  const remedies =
    classification.kind === 'insufficient-data' || classification.kind === 'stable'
      ? []
      : remediesFor({
          allocator,
          liveGrowth: kinds.has('live-growth'),
          jsHeapGrowth: kinds.has('js-heap-growth'),
          retention: kinds.has('retention'),
          externalGrowth: kinds.has('live-growth') && trends.external?.growing === true,
          arenaCount,
          manyArenas: t.manyArenas,
          release,
          heldRatioKeys: notable(HELD_RATIOS),
        });

  return {
    kind: classification.kind,
    summary: summaryOf(classification, trends, attribution, window, reasons.map(([, sentence]) => sentence), t),
    alsoSeen: classification.alsoSeen,
    insufficient: classification.insufficient,
    allocator,
    window,
    trends,
    attribution,
    evidence,
    remedies,
    unknowns: unknownsOf(trends, allocator, kinds, arenaCount, t),
    thresholds: t,
  };
}
