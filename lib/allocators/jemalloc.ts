/**
 * jemalloc: mapping into Snapshot fields, and the `jemalloc` namespace.
 *
 * Mapping (references/metrics.md §2.2-2.4, §8): the epoch is advanced first, then
 * stats.allocated/active/resident/mapped/retained/metadata; dirty and muzzy are
 * stats.arenas.4096.pdirty/pmuzzy x arenas.page; threadCache is stats.arenas.4096.tcache_bytes
 * (jemalloc counts tcache-held objects as allocated, so allocated - threadCache is app-live).
 */
import { native, SAMPLE_WITH_ALLOCATOR, NativeAllocatorKind } from '../binding';
import { AllocscopeError, describe } from '../errors';
import { readerForSlots, type SampleReader } from '../sample';
import { NULL_ALLOCATOR_BYTES, type Ratio } from '../snapshot';
import {
  ERRNO,
  isSignedName,
  isStringName,
  isWellFormedName,
  MAX_NAME_LENGTH,
  refusedReadReason,
  refusedValueReason,
  refusedWriteReason,
} from './jemalloc-mallctl';
import { measureRelease, requireAllocator, slotNames } from './live';
import type { AllocatorMapping, ReleaseResult } from './types';

/** jemalloc 5.x MALLCTL_ARENAS_ALL (the merged statistics of all arenas). */
export const ARENAS_ALL = 4096;

export const jemallocMapping: AllocatorMapping = {
  name: 'jemalloc',
  rawKey: 'jemalloc',
  slotPrefix: 'jemalloc.',
  // epoch + cached-MIB reads: ~9 us per initialized arena (limits.md §2).
  costClass: 'cheap',
  bytesFrom(read: SampleReader) {
    const allocated = read('jemalloc.stats.allocated');
    if (allocated === null) return null;
    const page = read('jemalloc.arenas.page');
    const pages = (slot: string): number | null => {
      const value = read(slot);
      return value === null || page === null ? null : value * page;
    };
    return {
      ...NULL_ALLOCATOR_BYTES,
      allocated,
      active: read('jemalloc.stats.active'),
      resident: read('jemalloc.stats.resident'),
      mapped: read('jemalloc.stats.mapped'),
      retained: read('jemalloc.stats.retained'),
      dirty: pages('jemalloc.stats.arenas.4096.pdirty'),
      muzzy: pages('jemalloc.stats.arenas.4096.pmuzzy'),
      metadata: read('jemalloc.stats.metadata'),
      threadCache: read('jemalloc.stats.arenas.4096.tcache_bytes'),
    };
  },
  extraRatios() {
    return {};
  },
};

/** A mallctl value: booleans for 1-byte controls, numbers (bigint beyond 2^53), strings for C strings. */
export type MallctlValue = boolean | number | bigint | string;
/** Types `read` can be told to expect (checked against the width mallctl reports). */
export type MallctlType = 'bool' | 'unsigned' | 'uint32' | 'int' | 'size_t' | 'uint64' | 'ssize_t' | 'int64' | 'string';

const TYPE_WIDTH: Record<Exclude<MallctlType, 'string'>, number> = {
  bool: 1,
  unsigned: 4,
  uint32: 4,
  int: 4,
  size_t: 8,
  uint64: 8,
  ssize_t: 8,
  int64: 8,
};
const SIGNED_TYPES = new Set<MallctlType>(['int', 'ssize_t', 'int64']);

function checkName(name: unknown, call: string): string {
  if (typeof name !== 'string' || !isWellFormedName(name)) {
    throw new AllocscopeError(
      'EINVAL',
      `${call} takes a mallctl name such as "stats.allocated" (dot-separated lower-case words and ` +
        `numbers, at most ${MAX_NAME_LENGTH} characters); got ${describe(name)}.`,
      { name },
    );
  }
  return name;
}

/** Turns a mallctl errno into an AllocscopeError with a sentence a user can act on. */
function mallctlError(errno: number, name: string, operation: 'read' | 'write'): AllocscopeError {
  const details = { name, errno, operation };
  switch (errno) {
    case ERRNO.ENOENT:
      return new AllocscopeError(
        'ENOCTL',
        `jemalloc has no mallctl named "${name}" (or this build compiled it out, e.g. --disable-stats). ` +
          'Check the name against `man jemalloc` for this version (jemalloc.read("version")).',
        details,
      );
    case ERRNO.EPERM:
      return new AllocscopeError(
        'EINVAL',
        operation === 'write'
          ? `"${name}" is read-only; it cannot be written.`
          : `"${name}" is write-only; write it with jemalloc.write() instead.`,
        details,
      );
    case ERRNO.EFAULT:
      return new AllocscopeError('EINVAL', `jemalloc refused that value for "${name}" (EFAULT): it is out of range or names something that does not exist.`, details);
    case ERRNO.EAGAIN:
    case ERRNO.ENOMEM:
      return new AllocscopeError('EINVAL', `jemalloc could not ${operation} "${name}" for lack of memory (errno ${errno}); try again later.`, details);
    default:
      return new AllocscopeError(
        'EINVAL',
        `jemalloc cannot ${operation} "${name}" as a plain value (errno ${errno}): it takes input or has a type ` +
          'that read/write do not offer.',
        details,
      );
  }
}

function numberFromBits(bits: bigint, width: number, signed: boolean): number | bigint {
  const value = signed ? BigInt.asIntN(width * 8, bits) : bits;
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/**
 * Reads any mallctl by name. Without `type`, the width comes from mallctl and the kind from
 * allocscope's table (strings, signed values); with `type`, the width must match.
 * @example jemalloc.read('opt.narenas') // 8
 */
function read(name: string, type?: MallctlType): MallctlValue {
  checkName(name, 'jemalloc.read(name)');
  // Object.hasOwn, not `in`: 'toString' or '__proto__' are not types.
  if (type !== undefined && !(type === 'string' || (typeof type === 'string' && Object.hasOwn(TYPE_WIDTH, type)))) {
    throw new AllocscopeError('EINVAL', `jemalloc.read type must be one of ${['string', ...Object.keys(TYPE_WIDTH)].join(', ')}; got ${describe(type)}.`, { type });
  }
  const refused = refusedReadReason(name);
  if (refused !== null) {
    throw new AllocscopeError('EUNSUPPORTED', `allocscope does not read "${name}": ${refused}. Call it from C if you must.`, { name });
  }
  requireAllocator('jemalloc', 'jemalloc.read()');
  if (isStringName(name)) {
    if (type !== undefined && type !== 'string') {
      throw new AllocscopeError('EINVAL', `"${name}" is a string mallctl; read it without a type or as 'string'.`, { name, type });
    }
    const result = native().jemallocReadString(name);
    if (result.errno !== 0) throw mallctlError(result.errno, name, 'read');
    return result.value as string;
  }
  if (type === 'string') {
    // Reading a number as a C string would dereference it; only known string controls qualify.
    throw new AllocscopeError('EINVAL', `"${name}" is not a known string mallctl; read it without a type to get its number.`, { name });
  }
  const result = native().jemallocReadAny(name);
  if (result.errno !== 0) throw mallctlError(result.errno, name, 'read');
  const width = result.size as number;
  if (type !== undefined && TYPE_WIDTH[type] !== width) {
    throw new AllocscopeError('EINVAL', `"${name}" is ${width} byte(s) wide, not a ${type} (${TYPE_WIDTH[type]} bytes).`, { name, type, width });
  }
  if (width === 1) return (result.bits as bigint) !== 0n;
  const signed = type !== undefined ? SIGNED_TYPES.has(type) : isSignedName(name);
  return numberFromBits(result.bits as bigint, width, signed);
}

/** The width mallctl reports for `name`, or null when it cannot be read (write-only controls). */
function widthOf(name: string): number | null {
  const probe = native().jemallocReadAny(name);
  return probe.errno === 0 ? (probe.size as number) : null;
}

/**
 * Writes a mallctl by name: no value for void controls ("arena.4096.purge", "thread.tcache.flush"),
 * a boolean, a number or bigint (width taken from mallctl), or a string for string controls.
 * Controls that take C pointers or would free memory in use are refused (EUNSUPPORTED).
 */
function write(name: string, value?: MallctlValue): void {
  checkName(name, 'jemalloc.write(name, value)');
  const refused = refusedWriteReason(name);
  if (refused !== null) {
    throw new AllocscopeError('EUNSUPPORTED', `allocscope does not write "${name}": ${refused}. Call it from C if you must.`, { name });
  }
  requireAllocator('jemalloc', 'jemalloc.write()');
  const binding = native();
  let errno: number;
  if (value === undefined) {
    // mallctl with neither input nor output succeeds on any value control and does nothing, so
    // `write('epoch')` or `write('stats.allocated')` would report a write that never happened.
    const width = widthOf(name);
    if (width !== null) {
      throw new AllocscopeError(
        'EINVAL',
        `"${name}" holds a ${width}-byte value: jemalloc.write(name) without a value does nothing to it. ` +
          'Pass the value to write, or read it with jemalloc.read().',
        { name, width },
      );
    }
    errno = binding.jemallocWrite(name, 'void');
  } else if (isStringName(name)) {
    if (typeof value !== 'string' || value.includes('\0') || value.length > 4096) {
      throw new AllocscopeError('EINVAL', `"${name}" takes a string (no NUL, at most 4096 characters); got ${describe(value)}.`, { name, value });
    }
    errno = binding.jemallocWrite(name, 'string', value);
  } else if (typeof value === 'boolean') {
    const width = widthOf(name);
    if (width !== null && width !== 1) {
      throw new AllocscopeError('EINVAL', `"${name}" takes a number (${width} bytes), not a boolean.`, { name, value });
    }
    errno = binding.jemallocWrite(name, 'sized', value ? 1n : 0n, 1);
  } else if ((typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'bigint') {
    const big = BigInt(value);
    const signed = isSignedName(name);
    if (big < 0n && !signed) {
      throw new AllocscopeError('EINVAL', `"${name}" is unsigned; ${value} is negative.`, { name, value });
    }
    // A signed control reads 2^63 and above as negative numbers: refuse rather than wrap.
    if (big < -(2n ** 63n) || big >= (signed ? 2n ** 63n : 2n ** 64n)) {
      throw new AllocscopeError('EINVAL', `${value} does not fit in ${signed ? 'a signed' : 'an unsigned'} 64-bit value.`, { name, value });
    }
    const refusedValue = refusedValueReason(name, big);
    if (refusedValue !== null) {
      throw new AllocscopeError('EINVAL', `"${name}" ${refusedValue}; got ${value}.`, { name, value });
    }
    const width = widthOf(name);
    if (width === 1) {
      throw new AllocscopeError('EINVAL', `"${name}" takes a boolean, not a number.`, { name, value });
    }
    const bits = BigInt.asUintN(64, big);
    if (width !== null) {
      if (width === 4 && (big > 0xffffffffn || big < -(2n ** 31n))) {
        throw new AllocscopeError('EINVAL', `"${name}" is 4 bytes wide; ${value} does not fit.`, { name, value });
      }
      errno = binding.jemallocWrite(name, 'sized', BigInt.asUintN(width * 8, bits), width);
    } else {
      // Write-only numeric control: jemalloc's WRITE() checks the width before doing anything,
      // so trying 8 then 4 bytes has no effect until the width is right (ctl.c).
      errno = binding.jemallocWrite(name, 'sized', bits, 8);
      if (errno === ERRNO.EINVAL && big <= 0xffffffffn) errno = binding.jemallocWrite(name, 'sized', bits, 4);
      if (errno === ERRNO.EPERM) {
        // Neither readable nor writable with a value: an action such as arena.<i>.purge.
        throw new AllocscopeError('EINVAL', `"${name}" is an action that takes no value; call jemalloc.write("${name}") without one.`, {
          name,
          errno,
          operation: 'write',
        });
      }
    }
  } else {
    throw new AllocscopeError(
      'EINVAL',
      `jemalloc.write value must be a boolean, a whole number, a bigint or (for string controls) a string; got ${describe(value)}.`,
      { name, value: describe(value) },
    );
  }
  if (errno !== 0) throw mallctlError(errno, name, 'write');
}

export interface JemallocSummary {
  epoch: number;
  allocatedBytes: number;
  activeBytes: number;
  residentBytes: number;
  mappedBytes: number;
  retainedBytes: number;
  metadataBytes: number;
  dirtyBytes: number;
  muzzyBytes: number;
  tcacheBytes: number;
  pageBytes: number;
  narenas: number;
}

/**
 * The summary figures through cached MIBs. `advanceEpoch: false` reads the figures of the last
 * epoch instead of refreshing them (to compare with a malloc_stats_print that just ran).
 */
function summary(options: { advanceEpoch?: boolean } = {}): JemallocSummary {
  if (typeof options !== 'object' || options === null || !['undefined', 'boolean'].includes(typeof options.advanceEpoch)) {
    throw new AllocscopeError('EINVAL', `jemalloc.summary options must be an object like { advanceEpoch: false }; got ${describe(options)}.`, {
      options: describe(options),
    });
  }
  requireAllocator('jemalloc', 'jemalloc.summary()');
  const names = slotNames();
  const slots = new Float64Array(names.length);
  const keepEpoch = options.advanceEpoch === false ? 4 : 0; // ASP_SAMPLE_KEEP_EPOCH
  native().sampleInto(slots, NativeAllocatorKind.Jemalloc, SAMPLE_WITH_ALLOCATOR | keepEpoch);
  const read = readerForSlots(names, slots);
  const status = read('allocatorStatus');
  if (status !== 0) throw mallctlError(status ?? ERRNO.ENOSYS, 'stats.*', 'read');
  const get = (slot: string) => read(`jemalloc.${slot}`) as number;
  const page = get('arenas.page');
  return {
    epoch: get('epoch'),
    allocatedBytes: get('stats.allocated'),
    activeBytes: get('stats.active'),
    residentBytes: get('stats.resident'),
    mappedBytes: get('stats.mapped'),
    retainedBytes: get('stats.retained'),
    metadataBytes: get('stats.metadata'),
    dirtyBytes: get('stats.arenas.4096.pdirty') * page,
    muzzyBytes: get('stats.arenas.4096.pmuzzy') * page,
    tcacheBytes: get('stats.arenas.4096.tcache_bytes'),
    pageBytes: page,
    narenas: get('arenas.narenas'),
  };
}

export interface JemallocBin {
  /** Region size of this size class. */
  sizeBytes: number;
  regionsPerSlab: number;
  slabBytes: number;
  /** Regions in use (tcache-held included). */
  curregs: number;
  curslabs: number;
  nonfullSlabs: number;
  /** curregs / (nregs x curslabs); null when no slab is held. */
  utilization: number | null;
  /** Free regions inside held slabs x size: this bin's share of small-bin fragmentation. */
  freeRegionBytes: number;
}

/** Per-bin layout and merged use over all arenas (after an epoch): 6 mallctls per bin. */
function bins(): JemallocBin[] {
  requireAllocator('jemalloc', 'jemalloc.bins()');
  const result = native().jemallocBins();
  if (result.errno !== 0) throw mallctlError(result.errno, 'stats.arenas.4096.bins', 'read');
  return (result.bins ?? []).map((bin) => {
    const capacity = bin.nregs * bin.curslabs;
    return {
      sizeBytes: bin.size,
      regionsPerSlab: bin.nregs,
      slabBytes: bin.slab_size,
      curregs: bin.curregs,
      curslabs: bin.curslabs,
      nonfullSlabs: bin.nonfull_slabs,
      utilization: capacity > 0 ? bin.curregs / capacity : null,
      freeRegionBytes: (capacity - bin.curregs) * bin.size,
    };
  });
}

/**
 * Redis >= 7.4's allocator_frag: sum over small bins of (nregs x curslabs - curregs) x size, and
 * ratio 1 + that / allocated (references/metrics.md §1.1; large allocations have no external
 * fragmentation worth counting).
 */
export function smallBinFragOf(binList: readonly JemallocBin[], allocated: number | null): Ratio | null {
  if (allocated === null || allocated <= 0) return null;
  const bytes = binList.reduce((sum, bin) => sum + bin.freeRegionBytes, 0);
  return { ratio: 1 + bytes / allocated, bytes };
}

const STATS_PRINT_OPTIONS = /^[gmdablxeh]*$/;

/**
 * `malloc_stats_print` with "J" (JSON), parsed. `options` adds jemalloc's letters: g (no general
 * info), m (no merged), d (no destroyed), a (no per-arena), b (no bins), l (no large), x (no
 * mutex), e (no extents), h (no hpa). 50 KB and ~0.7 ms with one arena; megabytes with 64.
 */
function statsJson(options: string = ''): { jemalloc: Record<string, unknown> } {
  if (typeof options !== 'string' || !STATS_PRINT_OPTIONS.test(options)) {
    throw new AllocscopeError('EINVAL', `jemalloc.statsJson options are letters from "gmdablxeh"; got ${describe(options)}.`, { options });
  }
  requireAllocator('jemalloc', 'jemalloc.statsJson()');
  const text = native().jemallocStatsPrint(`J${options}`);
  if (text === null) {
    /* c8 ignore next 2 -- jemalloc always exports malloc_stats_print */
    throw new AllocscopeError('EUNSUPPORTED', 'This jemalloc does not export malloc_stats_print.');
  }
  return JSON.parse(text) as { jemalloc: Record<string, unknown> };
}

/** mallctl arena.4096.purge: returns every arena's unused dirty and muzzy pages now. */
function purge(): ReleaseResult {
  requireAllocator('jemalloc', 'jemalloc.purge()');
  return measureRelease('jemalloc', `mallctl arena.${ARENAS_ALL}.purge`, () => {
    const errno = native().jemallocPurge();
    if (errno !== 0) throw mallctlError(errno, `arena.${ARENAS_ALL}.purge`, 'write');
  });
}

/** The opt.* settings that decide retention (decay times, arenas, THP), read, not assumed. */
const SETTING_NAMES = [
  'opt.narenas',
  'opt.dirty_decay_ms',
  'opt.muzzy_decay_ms',
  'opt.retain',
  'opt.background_thread',
  'opt.thp',
  'opt.metadata_thp',
  'opt.tcache',
  'opt.percpu_arena',
  'opt.oversize_threshold',
  'opt.cache_oblivious',
  'config.stats',
  'version',
] as const;

/** jemalloc's settings as this process runs it; a setting this version lacks is absent. */
function settings(): Record<string, MallctlValue> {
  requireAllocator('jemalloc', 'jemalloc.settings()');
  const out: Record<string, MallctlValue> = {};
  for (const name of SETTING_NAMES) {
    try {
      out[name] = read(name);
    } catch (error) {
      /* c8 ignore next -- every listed name exists in jemalloc 5.3 */
      if (!(error instanceof AllocscopeError) || error.code !== 'ENOCTL') throw error;
    }
  }
  return out;
}

/** jemalloc's own interfaces. Every call throws ENOALLOCATOR when jemalloc does not serve malloc. */
export const jemalloc = { read, write, summary, bins, statsJson, purge, settings };

export function jemallocRelease(): ReleaseResult {
  return jemalloc.purge();
}
