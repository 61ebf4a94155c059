/** The Self target: this process, read through the addon. */
import { getHeapStatistics } from 'node:v8';
import { allocatorEntry } from '../allocators';
import { jemalloc, jemallocMapping, smallBinFragOf } from '../allocators/jemalloc';
import { liveDetection, sampleFlags, slotNames } from '../allocators/live';
import type { ReleaseResult } from '../allocators/types';
import { assembleSnapshot } from '../assemble';
import { native, type NativeGlibcCensus, SAMPLE_WITH_ALLOCATOR } from '../binding';
import { AllocscopeError, describe } from '../errors';
import { type Sample, sampleFromSlots } from '../sample';
import type { AllocatorIdentity, AllocatorName, Snapshot, SnapshotRatios, V8Bytes } from '../snapshot';

export interface SnapshotOptions {
  /**
   * 'summary' (default): allocator totals, statm RSS and its anonymous share, peak RSS, V8 heap
   * totals: a few microseconds. 'full' adds /proc/self/status (file/shmem split, swap, ~13 us),
   * V8 arrayBuffers (process.memoryUsage, ~5 us) and, under jemalloc, the per-bin walk for
   * smallBinFrag (~150 mallctls).
   */
  detail?: 'summary' | 'full';
  /**
   * false: skip the allocator's read (statm RSS, peak RSS and V8 only, about 6 us whatever the
   * heap): the cheap tier a cost budget falls back to (monitor.ts) when the allocator's read would
   * cost too much, e.g. glibc mallinfo2 on a heap of a million free chunks (~150 ms). The snapshot's
   * level is then 'proc-basic' and levelNote says why. Default true.
   */
  allocator?: boolean;
}

export interface AllocatorReport extends AllocatorIdentity {
  /** The object that provides malloc, e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2. */
  mallocLibrary: string;
  /** "" or the prefix of a prefixed jemalloc (je_, _rjem_). */
  symbolPrefix: string;
}

/** Which allocator serves malloc in this process, its version and the evidence. */
export function allocator(): AllocatorReport {
  const live = liveDetection();
  return {
    name: live.name as AllocatorName,
    version: live.version === '' ? null : live.version,
    detectedBy: live.detectedBy,
    mallocLibrary: live.mallocLibrary,
    symbolPrefix: live.symbolPrefix,
  };
}

interface ReadPlan {
  full: boolean;
  withAllocator: boolean;
}

const SUMMARY_PLAN: ReadPlan = { full: false, withAllocator: true };

function planOf(options: SnapshotOptions | undefined): ReadPlan {
  if (options === undefined) return SUMMARY_PLAN;
  if (typeof options !== 'object' || options === null) {
    throw new AllocscopeError('EINVAL', `snapshot options must be an object like { detail: 'full' }; got ${describe(options)}.`);
  }
  const { detail = 'summary', allocator: withAllocator = true } = options;
  if (detail !== 'summary' && detail !== 'full') {
    throw new AllocscopeError('EINVAL', `snapshot detail must be 'summary' or 'full'; got ${describe(detail)}.`, { detail });
  }
  if (typeof withAllocator !== 'boolean') {
    throw new AllocscopeError('EINVAL', `snapshot option allocator must be true or false; got ${describe(withAllocator)}.`, { allocator: withAllocator });
  }
  return { full: detail === 'full', withAllocator };
}

/** Why a snapshot taken with { allocator: false } has no allocator figures. */
export const ALLOCATOR_SKIPPED_NOTE = 'allocator not read (snapshot option allocator: false)';

function flagsOf(plan: ReadPlan): number {
  return (plan.withAllocator ? SAMPLE_WITH_ALLOCATOR : 0) | sampleFlags(plan.full);
}

function v8BytesNow(full: boolean): V8Bytes {
  if (full) {
    const usage = process.memoryUsage();
    return { heapTotal: usage.heapTotal, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers };
  }
  // getHeapStatistics is ~0.3 us; process.memoryUsage re-reads RSS through libuv (~5 us).
  const heap = getHeapStatistics();
  return { heapTotal: heap.total_heap_size, heapUsed: heap.used_heap_size, external: heap.external_memory, arrayBuffers: null };
}

/** jemalloc at detail 'full': smallBinFrag from the per-bin walk (its own epoch; ~150 mallctls). */
function extraRatiosFor(name: AllocatorName, full: boolean, sample: Sample): Partial<SnapshotRatios> | undefined {
  if (!full || name !== 'jemalloc') return undefined;
  const allocated = jemallocMapping.bytesFrom(sample.read)?.allocated ?? null;
  return { smallBinFrag: smallBinFragOf(jemalloc.bins(), allocated) };
}

function finish(slots: Float64Array, plan: ReadPlan, start: bigint, time: number): Snapshot {
  const { full, withAllocator } = plan;
  const live = allocator();
  const sample = sampleFromSlots(slotNames(), slots);
  const v8Bytes = v8BytesNow(full);
  const extraRatios = withAllocator ? extraRatiosFor(live.name, full, sample) : undefined;
  return assembleSnapshot({
    sample,
    pid: process.pid,
    time,
    source: 'addon',
    level: withAllocator ? 'agent' : full ? 'proc-detailed' : 'proc-basic',
    levelNote: withAllocator ? null : ALLOCATOR_SKIPPED_NOTE,
    allocator: { name: live.name, version: live.version, detectedBy: live.detectedBy },
    v8Bytes,
    extraRatios,
    costNs: Number(process.hrtime.bigint() - start),
    extraCost: withAllocator && full && live.name === 'jemalloc' ? 'expensive' : undefined,
  });
}

/**
 * The slot array of the synchronous path, reused. A fresh Float64Array of ~50 doubles has its
 * backing store outside V8's heap (V8 keeps only typed arrays up to 64 bytes inside), so each
 * call cost a malloc and, at the next GC, a free; under glibc those freed chunks piled up in the
 * arenas mallinfo2 then walks: in a tight loop it saw a median of ~2,000 free chunks (up to
 * 14,000) instead of ~60, and snapshot() cost ~50 us instead of ~9 (scripts/bench/RESULTS.md).
 * Sharing is safe: the slots are read to the end before snapshot() returns, nothing samples into
 * them meanwhile, and each worker thread loads its own copy of this module.
 */
let syncSlots: Float64Array | undefined;

/** One Snapshot of this process (schema v1), taken on the calling thread. */
export function snapshot(options?: SnapshotOptions): Snapshot {
  const plan = planOf(options);
  const start = process.hrtime.bigint();
  const time = Date.now();
  syncSlots ??= new Float64Array(slotNames().length);
  native().sampleInto(syncSlots, liveDetection().kind, flagsOf(plan));
  return finish(syncSlots, plan, start, time);
}

/**
 * snapshot() with the allocator read on a libuv worker thread, so an expensive read (glibc
 * mallinfo2 on a fragmented heap walks every free chunk) does not stall the event loop. It still
 * takes the allocator's locks: threads allocating meanwhile wait for their arena.
 */
export async function snapshotAsync(options?: SnapshotOptions): Promise<Snapshot> {
  return (await timedSnapshotAsync(options)).snapshot;
}

/**
 * snapshotAsync(), and what the native read alone cost on its worker thread (ns). Snapshot.cost.ns
 * also counts the wait for a libuv worker; a cost budget (cost-budget.ts) wants the read itself.
 */
export async function timedSnapshotAsync(options?: SnapshotOptions): Promise<{ snapshot: Snapshot; nativeNs: number }> {
  const plan = planOf(options);
  const start = process.hrtime.bigint();
  const time = Date.now();
  const slots = await native().sampleAsync(liveDetection().kind, flagsOf(plan));
  const nativeNs = slots[slotNames().indexOf('costNs')];
  return { snapshot: finish(slots, plan, start, time), nativeNs };
}

/**
 * Under glibc: glibc's free lists counted without its locks, then, on the same worker thread, the
 * snapshot's read, only if the census counted at most `maxChunks` chunks on them (mallinfo2 walks
 * each one holding an arena's lock) or could not be taken. `snapshot` is null when the read was
 * not made. One worker hop for both (cost-budget.ts).
 */
export async function guardedGlibcSnapshotAsync(
  options: SnapshotOptions | undefined,
  maxChunks: number,
  tries: number,
): Promise<{ census: NativeGlibcCensus; snapshot: Snapshot | null; nativeNs: number }> {
  const plan = planOf(options);
  const start = process.hrtime.bigint();
  const time = Date.now();
  const { census, slots } = await native().glibcGuardedSampleAsync(liveDetection().kind, flagsOf(plan), maxChunks, tries);
  if (slots === null) return { census, snapshot: null, nativeNs: Number.NaN };
  return { census, snapshot: finish(slots, plan, start, time), nativeNs: slots[slotNames().indexOf('costNs')] };
}

/**
 * Gives free memory back to the kernel the way the live allocator does it (glibc malloc_trim(0),
 * jemalloc arena.4096.purge, tcmalloc ReleaseFreeMemory, mimalloc mi_collect(true)) and reports
 * the RSS before and after. None of them changes live bytes; all take allocator locks.
 */
export function purge(): ReleaseResult {
  const live = allocator();
  const entry = allocatorEntry(live.name);
  if (entry === undefined) {
    throw new AllocscopeError(
      'ENOALLOCATOR',
      `purge() knows glibc, jemalloc, tcmalloc and mimalloc; malloc here is served by ${live.name} (${live.detectedBy}).`,
      { live: live.name },
    );
  }
  return entry.release();
}
