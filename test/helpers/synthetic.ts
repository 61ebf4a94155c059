/**
 * Synthetic snapshots for verdict tests: only the figures a verdict reads are set, the rest are
 * null, as a source that cannot tell them would leave them.
 */
import { NULL_ALLOCATOR_BYTES, type AllocatorName, type Snapshot, type SnapshotRatios } from '../../lib/snapshot';

export const MiB = 1024 * 1024;

export interface SyntheticSample {
  /** Seconds since the window's start. */
  seconds: number;
  rss: number | null;
  allocated?: number | null;
  heapUsed?: number | null;
  heapTotal?: number | null;
  external?: number | null;
  /** No V8 figures at all (not Node). */
  noV8?: boolean;
  allocator?: AllocatorName;
  ratios?: Partial<SnapshotRatios>;
  pid?: number;
}

const NO_RATIOS: SnapshotRatios = { externalFrag: null, allocatorRetention: null, nonAllocatorRss: null, totalOverhead: null, smallBinFrag: null, arenaFree: null };

export function syntheticSnapshot(sample: SyntheticSample): Snapshot {
  return {
    schema: 1,
    pid: sample.pid ?? 4242,
    time: 1_700_000_000_000 + sample.seconds * 1000,
    monotonicNs: 5e12 + Math.round(sample.seconds * 1e9),
    source: 'addon',
    level: 'agent',
    levelNote: null,
    allocator: { name: sample.allocator ?? 'glibc', version: null, detectedBy: 'synthetic' },
    allocatorBytes: { ...NULL_ALLOCATOR_BYTES, allocated: sample.allocated ?? null },
    processBytes: { rss: sample.rss, rssAnon: null, rssFile: null, rssShmem: null, swap: null, peakRss: null, pss: null, lazyFree: null },
    v8Bytes: sample.noV8 ? null : { heapTotal: sample.heapTotal ?? null, heapUsed: sample.heapUsed ?? null, external: sample.external ?? null, arrayBuffers: null },
    ratios: { ...NO_RATIOS, ...sample.ratios },
    cost: { ns: 1000, class: 'cheap' },
    raw: {},
  };
}

/** n snapshots every `interval` seconds, each figure a function of the sample index. */
export function syntheticHistory(
  n: number,
  interval: number,
  figures: (i: number) => Omit<SyntheticSample, 'seconds'>,
): Snapshot[] {
  return Array.from({ length: n }, (_, i) => syntheticSnapshot({ seconds: i * interval, ...figures(i) }));
}
