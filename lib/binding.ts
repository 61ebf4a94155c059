/**
 * The only file that loads the native addon (STYLE.md "one home per fact"). It declares what the
 * addon exports (native/addon/bindings.h carries the same signatures) and casts once at load.
 * Not public API.
 */
import bindings from 'bindings';
import { AllocscopeError } from './errors';

/** Values of asp_allocator_kind (native/probe/allocator_detect.h). */
export const enum NativeAllocatorKind {
  Unknown = 0,
  Glibc = 1,
  Jemalloc = 2,
  Tcmalloc = 3,
  Mimalloc = 4,
  Musl = 5,
}

/** Flags of asp_sample (native/probe/sample.h). */
export const SAMPLE_WITH_STATUS = 1;
export const SAMPLE_WITH_ALLOCATOR = 2;

export interface NativeDetection {
  kind: NativeAllocatorKind;
  name: string;
  version: string;
  detectedBy: string;
  mallocLibrary: string;
  symbolPrefix: string;
  /**
   * The allocator behind plain malloc: `name`, except under a prefixed jemalloc (`symbolPrefix`
   * je_ or _rjem_), where `name` is jemalloc and this is the allocator malloc itself still uses
   * (glibc, musl or unknown), a second heap (native/probe/allocator_detect.h).
   */
  mallocAllocator: string;
}

export interface NativeMallinfo2 {
  arena: number;
  ordblks: number;
  smblks: number;
  hblks: number;
  hblkhd: number;
  usmblks: number;
  fsmblks: number;
  uordblks: number;
  fordblks: number;
  keepcost: number;
  fromLegacyMallinfo: boolean;
}

/** native/probe/glibc_census.h; status 0 = taken, negative = why not (ASP_CENSUS_*). */
export interface NativeGlibcCensus {
  status: number;
  arenas: number;
  arena: number;
  ordblks: number;
  smblks: number;
  fordblks: number;
  fsmblks: number;
  keepcost: number;
  /** Chunks on the free lists: what a mallinfo2 walks one by one (ordblks also counts each arena's top). */
  listedChunks: number;
  complete: boolean;
  /** What the census cost, ns, timed where it ran. */
  ns: number;
}

export interface NativeJemallocBin {
  size: number;
  nregs: number;
  slab_size: number;
  curregs: number;
  curslabs: number;
  nonfull_slabs: number;
}

export interface NativeMimallocProcessInfo {
  elapsed_msecs: number;
  user_msecs: number;
  system_msecs: number;
  current_rss: number;
  peak_rss: number;
  current_commit: number;
  peak_commit: number;
  page_faults: number;
}

export interface NativeBinding {
  detect(): NativeDetection;
  sampleSlotNames(): string[];
  /**
   * One sample (native/probe/sample.h) into `slots` (length >= sampleSlotNames().length). Pass the
   * same array call after call: it stays bound to the addon, and a call costs only the N-API
   * call on top of asp_sample() (scripts/bench/RESULTS.md). Another array is bound in its place.
   */
  sampleInto(slots: Float64Array, allocatorKind: number, flags: number): void;
  sampleAsync(allocatorKind: number, flags: number): Promise<Float64Array>;
  glibcMallinfo2(): NativeMallinfo2 | null;
  glibcMallocInfo(): string | null;
  glibcMallocInfoAsync(): Promise<string | null>;
  glibcMallocTrim(pad: number): 0 | 1 | -1;
  glibcCensus(maxChunks: number): NativeGlibcCensus;
  glibcCensusAsync(maxChunks: number): Promise<NativeGlibcCensus>;
  /**
   * A census, then on the same worker sampleAsync's read, only if the census counted at most
   * maxChunks listed chunks or was refused (status != 0); slots is null when it was not read.
   * A census incomplete and under the limit is taken again, up to `tries` times (its ns sums them).
   */
  glibcGuardedSampleAsync(allocatorKind: number, flags: number, maxChunks: number, tries: number): Promise<{ census: NativeGlibcCensus; slots: Float64Array | null }>;
  jemallocReadAny(name: string): { errno: number; size?: number; bits?: bigint };
  jemallocReadString(name: string): { errno: number; value?: string };
  jemallocWrite(name: string, kind: 'void' | 'sized' | 'string', value?: bigint | string, size?: number): number;
  jemallocBins(): { errno: number; bins?: NativeJemallocBin[] };
  jemallocStatsPrint(opts: string): string | null;
  jemallocPurge(): number;
  tcmallocProperty(name: string): number | null;
  tcmallocReleaseFreeMemory(): boolean;
  tcmallocStatsText(): string | null;
  mimallocProcessInfo(): NativeMimallocProcessInfo | null;
  mimallocCollect(force: boolean): boolean;
  peerCredentials(fd: number): { pid: number; uid: number; gid: number } | null;
}

/** What the platform is, as far as loading the addon is concerned. Injectable for tests. */
export interface PlatformFacts {
  platform: string;
  /** glibc version Node runs on, or undefined on musl. */
  glibcVersionRuntime: string | undefined;
}

export function currentPlatform(): PlatformFacts {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return { platform: process.platform, glibcVersionRuntime: header?.glibcVersionRuntime };
}

/** Throws EUNSUPPORTED on platforms where allocscope cannot read an allocator in-process. */
export function checkPlatform(facts: PlatformFacts): void {
  if (facts.platform !== 'linux') {
    throw new AllocscopeError(
      'EUNSUPPORTED',
      `allocscope reads Linux's /proc and Linux allocators; this process runs on ${facts.platform}. ` +
        'Run it on Linux (a container or VM works).',
      { platform: facts.platform },
    );
  }
  if (facts.glibcVersionRuntime === undefined) {
    throw new AllocscopeError(
      'EUNSUPPORTED',
      "This Node runs on musl libc, whose malloc keeps no statistics allocscope can read. Profile the " +
        'process from outside with `allocscope profile-pid` (procfs level), or run it on a glibc-based image.',
      { platform: facts.platform, libc: 'musl' },
    );
  }
}

/** What the addon itself exports: NativeBinding, with bindSlots + sampleBound where it has sampleInto. */
type AddonExports = Omit<NativeBinding, 'sampleInto'> & {
  bindSlots(slots: Float64Array): void;
  sampleBound(allocatorKind: number, flags: number): void;
};

/**
 * sampleInto over the addon's bound slot array. The addon keeps the last array bound (a
 * reference and its data pointer, per thread), so the common case, one array reused call after
 * call (snapshot()'s), passes no typed array to native code. A different array, or the same one
 * after its buffer was detached (length 0), is bound first; bindSlots then checks it.
 */
function boundSampler(addon: AddonExports): NativeBinding['sampleInto'] {
  let bound: Float64Array | undefined;
  return (slots, allocatorKind, flags) => {
    if (slots !== bound || slots.length === 0) {
      bound = undefined;
      addon.bindSlots(slots);
      bound = slots;
    }
    addon.sampleBound(allocatorKind, flags);
  };
}

let loaded: NativeBinding | undefined;

/** The addon, loaded on first use. Throws AllocscopeError with a fix when it cannot load. */
export function native(): NativeBinding {
  if (loaded !== undefined) return loaded;
  checkPlatform(currentPlatform());
  try {
    const addon = bindings('allocscope') as AddonExports;
    loaded = { ...addon, sampleInto: boundSampler(addon) };
  } catch (error) {
    /* c8 ignore next 7 -- only reachable in a checkout whose build failed or was removed */
    throw new AllocscopeError(
      'EUNSUPPORTED',
      `The allocscope native addon could not be loaded (${(error as Error).message.split('\n')[0]}). ` +
        'Run `npm rebuild allocscope` (or `npm run build` in a checkout); it needs python3, make and g++.',
      { cause: (error as Error).message },
    );
  }
  return loaded;
}
