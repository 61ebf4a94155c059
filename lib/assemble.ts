/**
 * Assembling a Snapshot from a sample, the same way for every source (addon, agent, procfs):
 * the allocator's mapping turns its own figures into Snapshot fields, and the ratios are computed
 * from one sample only.
 */
import { allocatorEntry } from './allocators';
import { type SampleReader, slotsWithPrefix } from './sample';
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
  read: SampleReader;
  /** Every slot name the source may carry (for the raw section). */
  slotNames: readonly string[];
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

const RAW_GROUPS = ['statm.', 'status.', 'rusage.', 'smaps_rollup.', 'maps.'] as const;

export function assembleSnapshot(context: SampleContext): Snapshot {
  const { read } = context;
  const entry = allocatorEntry(context.allocator.name);
  const fromAllocator = entry !== undefined ? entry.mapping.bytesFrom(read) : null;
  const allocatorBytes = fromAllocator ?? { ...NULL_ALLOCATOR_BYTES };
  // The allocator's read costs only when it happened (procfs names the allocator, never reads it).
  const allocatorCost = fromAllocator !== null ? entry?.mapping.costClass : undefined;
  const processBytes = processBytesFrom(read);
  const ratios: SnapshotRatios = {
    ...commonRatios(allocatorBytes, processBytes),
    smallBinFrag: null,
    arenaFree: null,
    ...(entry !== undefined && allocatorBytes.allocated !== null ? entry.mapping.extraRatios(allocatorBytes, processBytes) : {}),
    ...context.extraRatios,
  };
  const raw: Record<string, Record<string, number>> = {};
  if (entry !== undefined) {
    const own = slotsWithPrefix(read, context.slotNames, entry.mapping.slotPrefix);
    if (Object.keys(own).length > 0) raw[entry.mapping.rawKey] = own;
  }
  for (const prefix of RAW_GROUPS) {
    const group = slotsWithPrefix(read, context.slotNames, prefix);
    if (Object.keys(group).length > 0) raw[prefix.slice(0, -1)] = group;
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
    monotonicNs: read('monotonicNs') ?? 0,
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
