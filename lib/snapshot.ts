/**
 * The Snapshot (schema v1, DESIGN.md): one sample of the allocator's books, the kernel's and
 * V8's, with the ratios between them. Every byte field is nullable: null means "this source
 * cannot tell", never a guessed value. schema/snapshot.v1.json is the same contract as JSON
 * Schema.
 */
import type { SampleReader } from './sample';

export type AllocatorName = 'glibc' | 'jemalloc' | 'tcmalloc' | 'mimalloc' | 'musl' | 'unknown';
export type SnapshotSource = 'addon' | 'agent' | 'procfs' | 'attach';
export type InsightLevel = 'proc-basic' | 'proc-detailed' | 'agent' | 'attached';
export type CostClass = 'cheap' | 'moderate' | 'expensive';

export interface AllocatorIdentity {
  name: AllocatorName;
  /** The allocator's own version string; null when it has none (musl) or the source cannot tell. */
  version: string | null;
  /** The evidence for `name`, e.g. "malloc and mallctl are both defined in .../libjemalloc.so.2". */
  detectedBy: string;
}

/** The allocator's books, in bytes (references/metrics.md §8 for each allocator's mapping). */
export interface AllocatorBytes {
  /** Live bytes handed to the application (size-class rounded; includes thread caches where the allocator counts them). */
  allocated: number | null;
  /** Bytes in pages of slabs/spans in use (jemalloc stats.active; tcmalloc spans in use). */
  active: number | null;
  /** Bytes the allocator believes are resident (jemalloc: a maximum). */
  resident: number | null;
  /** Address space the allocator has mapped read/write. */
  mapped: number | null;
  /** Address space kept but with physical pages returned to the kernel. */
  retained: number | null;
  /** Unused pages not yet purged (jemalloc pdirty x page). */
  dirty: number | null;
  /** Pages given back with MADV_FREE, in RSS until the kernel reclaims them (jemalloc pmuzzy x page). */
  muzzy: number | null;
  /** Allocator metadata. */
  metadata: number | null;
  /** Free objects held in per-thread/central caches. */
  threadCache: number | null;
  /** Free bytes inside the heap (glibc fordblks; tcmalloc page-heap free). */
  heapFree: number | null;
  /** Bytes malloc_trim could return from the top of the main heap (glibc keepcost). */
  releasable: number | null;
}

/** The kernel's view of the process, in bytes. */
export interface ProcessBytes {
  rss: number | null;
  rssAnon: number | null;
  rssFile: number | null;
  rssShmem: number | null;
  swap: number | null;
  peakRss: number | null;
  pss: number | null;
  lazyFree: number | null;
}

/** V8's heap (Node only), in bytes; the same names as process.memoryUsage(). */
export interface V8Bytes {
  heapTotal: number | null;
  heapUsed: number | null;
  external: number | null;
  arrayBuffers: number | null;
}

/** A ratio with its signed byte difference (numerator - denominator), as Redis reports them. */
export interface Ratio {
  ratio: number;
  bytes: number;
}

export interface SnapshotRatios {
  /** active / allocated: free space inside pages held for size classes. */
  externalFrag: Ratio | null;
  /** resident / active: free pages the allocator keeps resident (purgeable). */
  allocatorRetention: Ratio | null;
  /** rss / resident: memory the allocator does not account for (V8, code, stacks, other mallocs). */
  nonAllocatorRss: Ratio | null;
  /** rss / allocated: Redis' mem_fragmentation_ratio; everything, not fragmentation. */
  totalOverhead: Ratio | null;
  /** jemalloc only, Redis >= 7.4: 1 + small-bin free regions / allocated. Only at detail 'full'. */
  smallBinFrag: Ratio | null;
  /** glibc only: mapped / allocated, bytes = free bytes inside the arenas (fordblks). */
  arenaFree: Ratio | null;
}

export interface SnapshotCost {
  /** Nanoseconds spent taking the sample. */
  ns: number;
  class: CostClass;
}

export interface Snapshot {
  schema: 1;
  pid: number;
  /** Wall-clock time of the sample, ms since the epoch. */
  time: number;
  /** CLOCK_MONOTONIC of the sample in ns (same clock for every source on the host). */
  monotonicNs: number;
  source: SnapshotSource;
  level: InsightLevel;
  /** Why a deeper level was not reached; null at the deepest level for this source. */
  levelNote: string | null;
  allocator: AllocatorIdentity;
  allocatorBytes: AllocatorBytes;
  processBytes: ProcessBytes;
  v8Bytes: V8Bytes | null;
  ratios: SnapshotRatios;
  cost: SnapshotCost;
  /** The sources' own figures, untouched (mallinfo2, jemalloc, tcmalloc, mimalloc, statm, status). */
  raw: Record<string, Record<string, number>>;
}

/**
 * Every allocator field null: the base each mapping spreads its figures over. Readonly to the
 * type checker only, not Object.freeze()d: V8 copies a frozen object through its slow path, and
 * that spread runs on every snapshot (~0.25-0.45 us frozen against ~0.05 us plain, Node 20).
 */
export const NULL_ALLOCATOR_BYTES: Readonly<AllocatorBytes> = {
  allocated: null,
  active: null,
  resident: null,
  mapped: null,
  retained: null,
  dirty: null,
  muzzy: null,
  metadata: null,
  threadCache: null,
  heapFree: null,
  releasable: null,
};

/** numerator / denominator with the signed byte delta; null when either is unknown or the denominator is not positive. */
export function ratioOf(numerator: number | null, denominator: number | null): Ratio | null {
  if (numerator === null || denominator === null || denominator <= 0) return null;
  return { ratio: numerator / denominator, bytes: numerator - denominator };
}

/** The four ratios every allocator shares (DESIGN.md "ratios"). */
export function commonRatios(heap: AllocatorBytes, proc: ProcessBytes): Omit<SnapshotRatios, 'smallBinFrag' | 'arenaFree'> {
  return {
    externalFrag: ratioOf(heap.active, heap.allocated),
    allocatorRetention: ratioOf(heap.resident, heap.active),
    nonAllocatorRss: ratioOf(proc.rss, heap.resident),
    totalOverhead: ratioOf(proc.rss, heap.allocated),
  };
}

/**
 * Process bytes from the kernel's slots. statm's `shared` is RssFile + RssShmem (Linux >= 4.5,
 * fs/proc/task_mmu.c task_statm), so the anonymous share is exact without /proc/self/status.
 */
export function processBytesFrom(read: SampleReader): ProcessBytes {
  const page = read('pageSize') ?? 4096;
  const resident = read('statm.resident');
  const shared = read('statm.shared');
  const rss = resident !== null ? resident * page : bytesOfKb(read, 'status.VmRSS');
  const rssAnon = bytesOfKb(read, 'status.RssAnon') ?? (resident !== null && shared !== null ? (resident - shared) * page : null);
  return {
    rss,
    rssAnon,
    rssFile: bytesOfKb(read, 'status.RssFile'),
    rssShmem: bytesOfKb(read, 'status.RssShmem'),
    swap: bytesOfKb(read, 'status.VmSwap') ?? bytesOfKb(read, 'smaps_rollup.Swap'),
    peakRss: bytesOfKb(read, 'status.VmHWM') ?? bytesOfKb(read, 'rusage.ru_maxrss'),
    pss: bytesOfKb(read, 'smaps_rollup.Pss'),
    lazyFree: bytesOfKb(read, 'smaps_rollup.LazyFree'),
  };
}

/** A slot the kernel gives in kB (status, smaps_rollup, ru_maxrss), in bytes. */
function bytesOfKb(read: SampleReader, slot: string): number | null {
  const value = read(slot);
  return value === null ? null : value * 1024;
}

const COST_ORDER: readonly CostClass[] = ['cheap', 'moderate', 'expensive'];

/**
 * The cost class of a sample: the class of what was read (DESIGN.md "Cost classes"), raised
 * when the measured time says more (20 us: ~0.002% of a core at 1 Hz; 1 ms: the stall budget).
 */
export function costClassOf(staticClass: CostClass, ns: number): CostClass {
  const measured: CostClass = ns < 20_000 ? 'cheap' : ns < 1_000_000 ? 'moderate' : 'expensive';
  return COST_ORDER[Math.max(COST_ORDER.indexOf(staticClass), COST_ORDER.indexOf(measured))];
}
