/**
 * /proc/<pid>/maps classifier: which mappings are glibc's main heap, its non-main arena heaps,
 * thread stacks, other anonymous memory and files, and which allocator library is loaded. Sizes
 * are address space (maps has no RSS); needs the target's uid or CAP_SYS_PTRACE.
 *
 * glibc arena heaps (malloc/arena.c new_heap): each non-main arena lives in heaps of
 * HEAP_MAX_SIZE = 2 * DEFAULT_MMAP_THRESHOLD_MAX = 64 MiB on 64-bit, mmapped PROT_NONE aligned
 * to 64 MiB, the used part mprotect'ed read-write as it grows. In maps that is an anonymous
 * rw-p mapping starting on a 64 MiB boundary followed by its ---p remainder, the two adding up
 * to 64 MiB (full heaps that sit side by side merge into one rw-p mapping of a multiple of
 * 64 MiB). Their count is the MALLOC_ARENA_MAX signal: one arena per thread up to 8 x cores.
 * Other 64 MiB-aligned runtimes (Go's heap arenas) would be counted too; the pattern is exact
 * enough that V8's 256 KiB pages are not.
 */
import type { AllocatorName } from '../snapshot';
import { procHex, procInteger, readProcFile, type ProcFileOptions } from './files';

export const GLIBC_HEAP_MAX_BYTES = 64 * 1024 * 1024;
/**
 * Largest PROT_NONE region taken for a thread stack's guard: glibc's default is one page, and
 * pthread_attr_setguardsize callers rarely ask for more. V8 leaves 184 KiB PROT_NONE gaps before
 * some of its read-write regions, which a larger limit would count as stacks.
 */
const MAX_GUARD_BYTES = 64 * 1024;
/** PTHREAD_STACK_MIN on x86-64 and arm64 glibc. */
const MIN_STACK_BYTES = 16 * 1024;

export interface MapsRegion {
  /**
   * Start address. Exact, [vsyscall] and 5-level paging's user space past 2^53 included: page-aligned
   * values below 2^64 are all doubles (procHex, lib/proc/files.ts).
   */
  start: number;
  end: number;
  /** e.g. 'rw-p', 'r-xp', '---p'. */
  perms: string;
  /** Offset into the file, bytes (page-aligned, so exact like the addresses). */
  offset: number;
  /**
   * The file's inode; 0 for anonymous memory; null when past 2^53 (overlayfs with xino and large
   * XFS volumes set the high bits): a file all the same.
   */
  inode: number | null;
  /** File path, '[heap]', '[stack]', '[anon:name]', ... or '' for an unnamed anonymous mapping. */
  path: string;
}

export type RegionKind =
  | 'main-heap'
  | 'arena-heap'
  | 'arena-reserve'
  | 'thread-stack'
  | 'stack-guard'
  | 'anonymous'
  | 'anonymous-reserve'
  | 'file'
  | 'kernel';

const LINE = /^([0-9a-f]+)-([0-9a-f]+) ([-rwxsp]{4}) ([0-9a-f]+) \S+ (\d+)\s*(.*)$/;

/**
 * Parses maps text into regions, in address order; lines that do not parse are skipped, and so are
 * lines whose address or offset a double cannot hold exactly (no kernel writes one).
 */
export function parseMaps(text: string): MapsRegion[] {
  const regions: MapsRegion[] = [];
  for (const line of text.split('\n')) {
    const match = LINE.exec(line);
    if (match === null) continue;
    const start = procHex(match[1]);
    const end = procHex(match[2]);
    const offset = procHex(match[4]);
    if (start === null || end === null || offset === null) continue;
    regions.push({ start, end, perms: match[3], offset, inode: procInteger(match[5]), path: match[6] });
  }
  return regions;
}

const KERNEL_REGIONS = new Set(['[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]', '[uprobes]', '[sigpage]', '[vectors]']);

function isAnonymous(region: MapsRegion): boolean {
  return region.inode === 0 && (region.path === '' || region.path.startsWith('[anon:'));
}

function size(region: MapsRegion): number {
  return region.end - region.start;
}

/**
 * The kind of each region (same order as `regions`). Named mappings first (glibc >= 2.39 with
 * glibc.mem.decorate_maps=1 names its arenas and stacks), then the address patterns.
 */
export function classifyRegions(regions: readonly MapsRegion[]): RegionKind[] {
  const kinds: (RegionKind | undefined)[] = new Array(regions.length);
  // Pass 1: names, and arena heaps with their reserves (before stacks: a reserve followed by a
  // read-write mapping would otherwise look like a guard page).
  regions.forEach((region, at) => {
    const { path } = region;
    if (path === '[heap]') kinds[at] = 'main-heap';
    else if (path.startsWith('[stack')) kinds[at] = 'thread-stack';
    else if (KERNEL_REGIONS.has(path)) kinds[at] = 'kernel';
    else if (path === '[anon: glibc: malloc arena]') kinds[at] = 'arena-heap';
    else if (path.startsWith('[anon: glibc: pthread stack') || path.startsWith('[anon: glibc: pthread user stack')) kinds[at] = 'thread-stack';
    if (kinds[at] === 'arena-heap' || (kinds[at] === undefined && looksLikeArenaStart(region))) {
      const next = regions[at + 1];
      const reserve = next !== undefined && next.start === region.end && next.perms === '---p' && isAnonymous(next) ? next : undefined;
      const total = size(region) + (reserve === undefined ? 0 : size(reserve));
      if (kinds[at] === 'arena-heap' || total % GLIBC_HEAP_MAX_BYTES === 0) {
        kinds[at] = 'arena-heap';
        if (reserve !== undefined) kinds[at + 1] = 'arena-reserve';
      }
    }
  });
  // Pass 2: guard-page-preceded read-write anonymous mappings are thread stacks (glibc
  // allocate_stack: mmap the stack, mprotect its lowest guardsize bytes PROT_NONE).
  regions.forEach((region, at) => {
    if (kinds[at] !== undefined) return;
    const previous = regions[at - 1];
    if (
      region.perms === 'rw-p' &&
      isAnonymous(region) &&
      size(region) >= MIN_STACK_BYTES &&
      previous !== undefined &&
      kinds[at - 1] === undefined &&
      previous.end === region.start &&
      previous.perms === '---p' &&
      isAnonymous(previous) &&
      size(previous) <= MAX_GUARD_BYTES
    ) {
      kinds[at - 1] = 'stack-guard';
      kinds[at] = 'thread-stack';
    }
  });
  return regions.map((region, at) => kinds[at] ?? (isAnonymous(region) ? (region.perms === '---p' ? 'anonymous-reserve' : 'anonymous') : 'file'));
}

/** An unnamed read-write anonymous mapping on a 64 MiB boundary, at most 16 merged heaps long. */
function looksLikeArenaStart(region: MapsRegion): boolean {
  return region.perms === 'rw-p' && region.path === '' && region.inode === 0 && region.start % GLIBC_HEAP_MAX_BYTES === 0 && size(region) <= 16 * GLIBC_HEAP_MAX_BYTES;
}

export interface RegionTotals {
  count: number;
  /** Address space, bytes (not resident bytes). */
  bytes: number;
}

export interface AllocatorLibraryMatch {
  name: AllocatorName;
  /** The mapped file, as maps shows it (a " (deleted)" suffix removed). */
  path: string;
}

export interface MapsSummary {
  /** Number of VMAs. */
  regions: number;
  /** glibc's main arena: the brk heap. */
  mainHeap: RegionTotals;
  /** glibc non-main arena heaps (64 MiB units); count >= arenas - 1 while no arena outgrew one heap. */
  glibcArenaHeaps: RegionTotals;
  /** Their reserved, never-touched remainders. */
  glibcArenaReserve: RegionTotals;
  /** [stack] plus guard-page-preceded (or glibc-named) thread stacks. */
  threadStacks: RegionTotals;
  stackGuards: RegionTotals;
  /** Other anonymous read/write/exec mappings: large malloc chunks (mmapped), V8 and JIT pages, other allocators' extents. */
  otherAnonymous: RegionTotals;
  /** Other anonymous PROT_NONE reservations. */
  anonymousReserve: RegionTotals;
  /** Mappings of files, including shared objects, /dev/shm and memfd. */
  fileBacked: RegionTotals;
  /** [vdso], [vvar], [vsyscall]. */
  kernel: RegionTotals;
  /** Distinct shared objects mapped, in address order. */
  sharedObjects: string[];
  /** The allocator libraries among them (jemalloc, tcmalloc, mimalloc) and the C library (glibc, musl). */
  allocatorLibraries: AllocatorLibraryMatch[];
}

/** Shared-object base names -> allocator. tcmalloc: libtcmalloc, _minimal, _and_profiler, _debug. */
const LIBRARY_PATTERNS: readonly [RegExp, AllocatorName][] = [
  [/^libjemalloc[\w.-]*\.so(\.|$)/, 'jemalloc'],
  [/^libtcmalloc[\w.-]*\.so(\.|$)/, 'tcmalloc'],
  [/^libmimalloc[\w.-]*\.so(\.|$)/, 'mimalloc'],
  // musl's dynamic loader is its libc too (ld-musl-x86_64.so.1; Alpine also has libc.musl-x86_64.so.1).
  [/^(ld-musl-[\w]+\.so|libc\.musl-[\w]+\.so)(\.|$)/, 'musl'],
  [/^(libc\.so\.6|libc-2\.\d+\.so)$/, 'glibc'],
];

/** The allocator a shared object's path names, or null. */
export function allocatorOfLibrary(path: string): AllocatorName | null {
  const base = path.slice(path.lastIndexOf('/') + 1);
  for (const [pattern, name] of LIBRARY_PATTERNS) if (pattern.test(base)) return name;
  return null;
}

const SHARED_OBJECT = /\.so(\.[\d.]+)?$/;

/** Counts and sums regions by kind, and lists shared objects and allocator libraries. */
export function summarizeMaps(regions: readonly MapsRegion[]): MapsSummary {
  const kinds = classifyRegions(regions);
  const totals = (): RegionTotals => ({ count: 0, bytes: 0 });
  const summary: MapsSummary = {
    regions: regions.length,
    mainHeap: totals(),
    glibcArenaHeaps: totals(),
    glibcArenaReserve: totals(),
    threadStacks: totals(),
    stackGuards: totals(),
    otherAnonymous: totals(),
    anonymousReserve: totals(),
    fileBacked: totals(),
    kernel: totals(),
    sharedObjects: [],
    allocatorLibraries: [],
  };
  const byKind: Record<RegionKind, RegionTotals> = {
    'main-heap': summary.mainHeap,
    'arena-heap': summary.glibcArenaHeaps,
    'arena-reserve': summary.glibcArenaReserve,
    'thread-stack': summary.threadStacks,
    'stack-guard': summary.stackGuards,
    anonymous: summary.otherAnonymous,
    'anonymous-reserve': summary.anonymousReserve,
    file: summary.fileBacked,
    kernel: summary.kernel,
  };
  const seen = new Set<string>();
  regions.forEach((region, at) => {
    const bucket = byKind[kinds[at]];
    const bytes = size(region);
    bucket.bytes += bytes;
    // A full-heap mapping that merged with its neighbours holds several 64 MiB heaps.
    bucket.count += kinds[at] === 'arena-heap' && region.path === '' ? Math.max(1, Math.floor((bytes + reserveAfter(at)) / GLIBC_HEAP_MAX_BYTES)) : 1;
    if (kinds[at] !== 'file') return;
    const path = region.path.endsWith(' (deleted)') ? region.path.slice(0, -' (deleted)'.length) : region.path;
    if (seen.has(path) || !SHARED_OBJECT.test(path)) return;
    seen.add(path);
    summary.sharedObjects.push(path);
    const name = allocatorOfLibrary(path);
    if (name !== null) summary.allocatorLibraries.push({ name, path });
  });
  return summary;

  function reserveAfter(at: number): number {
    return kinds[at + 1] === 'arena-reserve' ? size(regions[at + 1]) : 0;
  }
}

/** The numeric summary as `maps.<name>` slots for Snapshot.raw.maps. */
export function mapsSlots(summary: MapsSummary): Record<string, number> {
  return {
    'maps.regions': summary.regions,
    'maps.mainHeapBytes': summary.mainHeap.bytes,
    'maps.glibcArenaHeaps': summary.glibcArenaHeaps.count,
    'maps.glibcArenaHeapBytes': summary.glibcArenaHeaps.bytes,
    'maps.glibcArenaReserveBytes': summary.glibcArenaReserve.bytes,
    'maps.threadStacks': summary.threadStacks.count,
    'maps.threadStackBytes': summary.threadStacks.bytes,
    'maps.otherAnonymousRegions': summary.otherAnonymous.count,
    'maps.otherAnonymousBytes': summary.otherAnonymous.bytes,
    'maps.anonymousReserveBytes': summary.anonymousReserve.bytes,
    'maps.fileBackedRegions': summary.fileBacked.count,
    'maps.fileBackedBytes': summary.fileBacked.bytes,
    'maps.sharedObjects': summary.sharedObjects.length,
  };
}

/** Reads and classifies /proc/<pid>/maps; throws ESRCH or EACCES (lib/proc/files.ts). */
export function readMaps(pid: number, options?: ProcFileOptions): MapsSummary {
  return summarizeMaps(parseMaps(readProcFile(pid, 'maps', options)));
}
