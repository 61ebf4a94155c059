/** The contract each lib/allocators/<name>.ts fulfils: its raw figures -> Snapshot fields. */
import type { SampleReader } from '../sample';
import type { AllocatorBytes, AllocatorName, CostClass, ProcessBytes, SnapshotRatios } from '../snapshot';

export interface AllocatorMapping {
  name: AllocatorName;
  /** Key under Snapshot.raw for this allocator's own figures. */
  rawKey: string;
  /** Slot-name prefix of those figures (native/probe/sample.h). */
  slotPrefix: string;
  /** Cost class of reading its totals (DESIGN.md "Cost classes"). */
  costClass: CostClass;
  /** Snapshot fields from a sample; null when the sample carries no totals for this allocator. */
  bytesFrom(read: SampleReader): AllocatorBytes | null;
  /** Ratios only this allocator can give. */
  extraRatios(bytes: AllocatorBytes, proc: ProcessBytes): Partial<SnapshotRatios>;
}

/** What an allocator's release call did, measured by RSS before and after. */
export interface ReleaseResult {
  allocator: AllocatorName;
  /** The call made, e.g. "malloc_trim(0)" or "mallctl arena.4096.purge". */
  action: string;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** rssBefore - rssAfter: positive when memory went back to the kernel (can be negative under concurrent growth). */
  returnedBytes: number;
  durationNs: number;
  /** A sentence for people: what was returned, or honestly that nothing was and why that can be. */
  note: string;
}
