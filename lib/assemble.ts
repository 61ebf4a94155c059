/**
 * Assembling a Snapshot from a sample, the same way for every source (addon, agent, procfs):
 * the allocator's mapping turns its own figures into Snapshot fields, and the ratios are computed
 * from one sample only.
 */
import { allocatorEntry } from './allocators';
import type { Sample } from './sample';
import {
  type AllocatorIdentity,
  commonRatios,
  costClassOf,
  type CostClass,
  type InsightLevel,
  NULL_ALLOCATOR_BYTES,
  processBytesFrom,
  type Snapshot,
  type SnapshotRatios,
  type SnapshotSource,
  type V8Bytes,
} from './snapshot';

export interface SampleContext {
  sample: Sample;
  pid: number;
  time: number;
  source: SnapshotSource;
  level: InsightLevel;
  levelNote: string | null;
  allocator: AllocatorIdentity;
  v8Bytes: V8Bytes | null;
  /** Ratios computed from extra reads (jemalloc bins). */
  extraRatios?: Partial<SnapshotRatios>;
  /** Nanoseconds the whole sample took, as the caller measured it. */
  costNs: number;
  /** Cost class of reads beyond the allocator totals (smaps, bins). */
  extraCost?: CostClass;
}

/** The kernel's figures kept under Snapshot.raw: slot-name prefix, and the key under raw. */
const RAW_GROUPS: ReadonlyArray<readonly [string, string]> = [
  ['statm.', 'statm'],
  ['status.', 'status'],
  ['rusage.', 'rusage'],
  ['smaps_rollup.', 'smaps_rollup'],
  ['maps.', 'maps'],
];

export function assembleSnapshot(context: SampleContext): Snapshot {
  const { sample } = context;
  const mapping = allocatorEntry(context.allocator.name)?.mapping;
  const fromAllocator = mapping?.bytesFrom(sample.read) ?? null;
  const allocatorBytes = fromAllocator ?? { ...NULL_ALLOCATOR_BYTES };
  // The allocator's read costs only when it happened (procfs names the allocator, never reads it).
  const allocatorCost = fromAllocator !== null ? mapping?.costClass : undefined;
  const processBytes = processBytesFrom(sample.read);
  // Spelled out: spreading commonRatios' result into a wider literal took V8's slow clone path,
  // ~2 us of a ~5 us budget (Node 20, scripts/bench/snapshot).
  const common = commonRatios(allocatorBytes, processBytes);
  const ratios: SnapshotRatios = {
    externalFrag: common.externalFrag,
    allocatorRetention: common.allocatorRetention,
    nonAllocatorRss: common.nonAllocatorRss,
    totalOverhead: common.totalOverhead,
    smallBinFrag: null,
    arenaFree: null,
  };
  if (mapping !== undefined && allocatorBytes.allocated !== null) Object.assign(ratios, mapping.extraRatios(allocatorBytes, processBytes));
  if (context.extraRatios !== undefined) Object.assign(ratios, context.extraRatios);
  const raw: Record<string, Record<string, number>> = {};
  if (mapping !== undefined) {
    const own = sample.group(mapping.slotPrefix);
    if (own !== null) raw[mapping.rawKey] = own;
  }
  for (const [prefix, key] of RAW_GROUPS) {
    const group = sample.group(prefix);
    if (group !== null) raw[key] = group;
  }
  const staticClass: CostClass =
    context.extraCost === 'expensive' || allocatorCost === 'expensive'
      ? 'expensive'
      : context.extraCost === 'moderate' || allocatorCost === 'moderate'
        ? 'moderate'
        : 'cheap';
  return {
    schema: 1,
    pid: context.pid,
    time: context.time,
    monotonicNs: sample.read('monotonicNs') ?? 0,
    source: context.source,
    level: context.level,
    levelNote: context.levelNote,
    allocator: context.allocator,
    allocatorBytes,
    processBytes,
    v8Bytes: context.v8Bytes,
    ratios,
    cost: { ns: context.costNs, class: costClassOf(staticClass, context.costNs) },
    raw,
  };
}
