/**
 * glibc ptmalloc: mapping into Snapshot fields, and the `glibc` namespace.
 *
 * Mapping (references/metrics.md §3.5, §8): allocated = uordblks + hblkhd (in-use chunks,
 * headers and tcache-held chunks included, plus mmapped chunks); mapped = arena + hblkhd;
 * heapFree = fordblks (binned free chunks + top); releasable = keepcost (top of the main arena).
 * glibc has no active or resident figure: free chunks may or may not be backed by pages.
 */
import { native, type NativeGlibcCensus, type NativeMallinfo2 } from '../binding';
import { AllocscopeError, checkInteger, describe } from '../errors';
import type { SampleReader } from '../sample';
import { NULL_ALLOCATOR_BYTES, ratioOf } from '../snapshot';
import { parseMallocInfo, type MallocInfo } from './glibc-malloc-info';
import { measureRelease, requireAllocator } from './live';
import type { AllocatorMapping, ReleaseResult } from './types';

export const glibcMapping: AllocatorMapping = {
  name: 'glibc',
  rawKey: 'mallinfo2',
  slotPrefix: 'mallinfo2.',
  // mallinfo2 walks every free chunk under each arena's lock: ~0.2 us + 150 ns per free chunk
  // (limits.md §1a), 150 ms at a million free chunks.
  costClass: 'expensive',
  bytesFrom(read: SampleReader) {
    const uordblks = read('mallinfo2.uordblks');
    const hblkhd = read('mallinfo2.hblkhd');
    const arena = read('mallinfo2.arena');
    if (uordblks === null || hblkhd === null || arena === null) return null;
    return {
      ...NULL_ALLOCATOR_BYTES,
      allocated: uordblks + hblkhd,
      mapped: arena + hblkhd,
      heapFree: read('mallinfo2.fordblks'),
      releasable: read('mallinfo2.keepcost'),
    };
  },
  extraRatios(bytes) {
    // mapped - allocated = arena - uordblks = fordblks: the free bytes inside the arenas.
    return { arenaFree: ratioOf(bytes.mapped, bytes.allocated) };
  },
};

export interface Mallinfo2 extends Omit<NativeMallinfo2, 'fromLegacyMallinfo'> {
  /** True when glibc < 2.33 forced the int-based mallinfo(): values wrap modulo 4 GiB. */
  wrapMayOccur: boolean;
}

/** glibc's own `mallinfo2()` figures, field names untouched (bytes and chunk counts). */
function mallinfo2(): Mallinfo2 {
  requireAllocator('glibc', 'glibc.mallinfo2()');
  const raw = native().glibcMallinfo2();
  if (raw === null) {
    /* c8 ignore next 2 -- glibc without mallinfo2 and mallinfo does not exist */
    throw new AllocscopeError('EUNSUPPORTED', 'This libc has neither mallinfo2 nor mallinfo.');
  }
  const { fromLegacyMallinfo, ...fields } = raw;
  return { ...fields, wrapMayOccur: fromLegacyMallinfo };
}

function unsupportedMallocInfo(): never {
  /* c8 ignore next 4 -- every glibc since 2.10 has malloc_info */
  throw new AllocscopeError('EUNSUPPORTED', 'malloc_info is not available in this libc (glibc >= 2.10 has it).');
}

/**
 * `malloc_info()` parsed: per-arena free-chunk totals, system and address-space bytes, and the
 * free-chunk size histogram. It walks every free chunk like mallinfo2: prefer mallocInfoAsync()
 * on a large heap.
 */
function mallocInfo(): MallocInfo & { xml: string } {
  requireAllocator('glibc', 'glibc.mallocInfo()');
  const xml = native().glibcMallocInfo();
  if (xml === null) unsupportedMallocInfo();
  return { ...parseMallocInfo(xml), xml };
}

/** mallocInfo() with the walk on a libuv worker thread instead of the JS thread. */
async function mallocInfoAsync(): Promise<MallocInfo & { xml: string }> {
  requireAllocator('glibc', 'glibc.mallocInfoAsync()');
  const xml = await native().glibcMallocInfoAsync();
  if (xml === null) unsupportedMallocInfo();
  return { ...parseMallocInfo(xml), xml };
}

/**
 * `malloc_trim(pad)`: returns whole free pages of every arena to the kernel and shrinks the main
 * heap's top down to `pad` bytes. Measured by RSS: on finely fragmented heaps it often returns
 * nothing (limits.md §1b), and the result says so.
 */
function trim(pad: number = 0): ReleaseResult & { trimmed: boolean } {
  if (typeof pad !== 'number' || !Number.isSafeInteger(pad) || pad < 0) {
    throw new AllocscopeError(
      'EINVAL',
      `glibc.trim(pad) takes a whole number of bytes, 0 or more, to keep at the top of the heap; got ${describe(pad)}.`,
      { pad },
    );
  }
  requireAllocator('glibc', 'glibc.trim()');
  let trimmed = false;
  const result = measureRelease('glibc', `malloc_trim(${pad})`, () => {
    trimmed = native().glibcMallocTrim(pad) === 1;
  });
  return { ...result, trimmed };
}

/**
 * What mallinfo2 would count, taken without glibc's locks (native/probe/glibc_census.c): the free
 * chunks of every arena's bins and fastbins, their bytes, and the arenas' system bytes. Fields are
 * named after the mallinfo2 fields they mirror. On a quiet heap they equal mallinfo2's; while
 * other threads allocate they can be off by the chunks that moved during the walk, and `complete`
 * is false when a list changed under the walk or `maxChunks` was reached (the counts are then a
 * lower bound).
 */
export type GlibcCensus = Omit<NativeGlibcCensus, 'status'>;

export interface GlibcCensusOptions {
  /** Stop after walking this many free chunks (1 to 1e9; default 1e7). */
  maxChunks?: number;
}

/** Why a census could not be taken, by ASP_CENSUS_* status (native/probe/glibc_census.h). */
const CENSUS_REFUSALS: Record<number, string> = {
  [-1]: 'this process has no glibc malloc',
  [-2]: "this glibc's malloc_state layout is not one the census knows (64-bit glibc 2.32 to 2.41)",
  [-3]: "no main_arena was recognised in glibc's data segment",
  [-4]: 'process_vm_readv on this process was refused (a seccomp filter?)',
};

/** The census's refusal as a sentence, or null when it was taken. */
export function censusRefusal(raw: NativeGlibcCensus): string | null {
  return raw.status === 0 ? null : (CENSUS_REFUSALS[raw.status] ?? `status ${raw.status}`);
}

const DEFAULT_CENSUS_CHUNKS = 1e7;

function censusLimit(options: GlibcCensusOptions | undefined, call: string): number {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new AllocscopeError('EINVAL', `${call} takes an options object like { maxChunks: 100000 }; got ${describe(options)}.`);
  }
  return checkInteger(`${call}: maxChunks`, options?.maxChunks ?? DEFAULT_CENSUS_CHUNKS, 1, 1e9);
}

function censusResult(raw: NativeGlibcCensus, call: string): GlibcCensus {
  const refusal = censusRefusal(raw);
  if (refusal !== null) {
    throw new AllocscopeError('EUNSUPPORTED', `${call} cannot count glibc's free lists here: ${refusal}. glibc.mallinfo2() still works; it takes the arenas' locks.`, {
      status: raw.status,
    });
  }
  const { status: _status, ...fields } = raw;
  return fields;
}

/** glibc's free lists counted without its locks, on the JS thread. */
function census(options?: GlibcCensusOptions): GlibcCensus {
  const maxChunks = censusLimit(options, 'glibc.census()');
  requireAllocator('glibc', 'glibc.census()');
  return censusResult(native().glibcCensus(maxChunks), 'glibc.census()');
}

/** census() on a libuv worker thread: for a heap of many free chunks (0.3-0.7 us each, scripts/bench/RESULTS.md). */
async function censusAsync(options?: GlibcCensusOptions): Promise<GlibcCensus> {
  const maxChunks = censusLimit(options, 'glibc.censusAsync()');
  requireAllocator('glibc', 'glibc.censusAsync()');
  return censusResult(await native().glibcCensusAsync(maxChunks), 'glibc.censusAsync()');
}

/** glibc malloc's own interfaces. Every call throws ENOALLOCATOR when glibc does not serve malloc. */
export const glibc = { mallinfo2, mallocInfo, mallocInfoAsync, trim, census, censusAsync };

/** The allocator-appropriate release for purge(). */
export function glibcRelease(): ReleaseResult {
  return glibc.trim(0);
}
