/**
 * What allocscope knows about mallctl names beyond what mallctl itself reports. mallctl tells a
 * value's width (jemalloc's READ() macro sets *oldlenp on a size mismatch, ctl.c) but not whether
 * it is signed or a C string, and a string read as a number, or a number written where jemalloc
 * expects a pointer, would crash the process. So: strings and signed values come from this table
 * (jemalloc 5.3 doc/jemalloc.xml.in and src/ctl.c), and writes that take C pointers or free memory
 * the process may still use are refused, as are the few reads that crash jemalloc 5.3 itself.
 */

/** mallctls whose value is a `const char *`. Anything else is read as a number. */
const STRING_NAMES: readonly RegExp[] = [
  /^version$/,
  /^config\.malloc_conf$/,
  /^opt\.(dss|thp|metadata_thp|percpu_arena|stats_print_opts|stats_interval_opts|junk|prof_prefix|malloc_conf|zero_realloc|prof_time_resolution)$/,
  /^arena\.\d+\.dss$/,
  /^stats\.arenas\.\d+\.dss$/,
  /^thread\.prof\.name$/,
  /^prof\.(dump|prefix|log_start)$/,
];

/** mallctls of type ssize_t / int64_t (e.g. -1 disables decay). */
const SIGNED_NAMES: readonly RegExp[] = [
  /decay_ms$/,
  // opt.lg_extent_max_active_fit is a size_t in 5.3 (ctl.c CTL_RO_NL_GEN), so it is not here.
  /^opt\.(lg_prof_interval|stats_interval|prof_recent_alloc_max|mutex_max_spin|lg_tcache_nslots_mul|lg_san_uaf_align)$/,
  /^experimental\.prof_recent\.alloc_max$/,
];

/** Writes refused, each with the reason given to the user. */
const REFUSED_WRITES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\.extent_hooks$/, 'it takes a pointer to C extent hooks'],
  [/^experimental\./, 'experimental controls take C pointers'],
  [/^arenas\.lookup$/, 'it takes a C pointer'],
  [/^tcache\.(flush|destroy)$/, 'it manages explicit tcaches by index, which only the code that created them can use safely'],
  [/^arena\.\d+\.(reset|destroy)$/, 'it frees every allocation in the arena, including memory the process may still use'],
  // ctl.c VERIFY_READ does `*oldlenp = 0` before checking oldlenp: written without an output
  // buffer these crash jemalloc 5.3, and with a value arenas.create takes C extent hooks.
  [/^(arenas|tcache)\.create$/, 'it creates an arena or tcache for C code that uses it by index'],
];

/**
 * Values jemalloc 5.3 accepts but cannot live with. max_background_threads has no lower bound in
 * ctl.c (max_background_threads_ctl), and background_thread.c then picks a thread with
 * `ind % max_background_threads`: 0 is a division by zero (SIGFPE) once background threads run.
 */
const REFUSED_VALUES: ReadonlyArray<readonly [RegExp, (value: bigint) => boolean, string]> = [
  [/^max_background_threads$/, (value) => value === 0n, 'must be at least 1: jemalloc 5.3 accepts 0 and then divides by it when a background thread starts'],
];

/** The reason `value` may not be written to `name`, or null. */
export function refusedValueReason(name: string, value: bigint): string | null {
  for (const [pattern, refuses, reason] of REFUSED_VALUES) if (pattern.test(name) && refuses(value)) return reason;
  return null;
}

/** Reads refused, each with the reason given to the user. */
const REFUSED_READS: ReadonlyArray<readonly [RegExp, string]> = [
  // ctl.c arenas_lookup_ctl: without an input pointer, jemalloc 5.3 looks up NULL and crashes.
  [/^arenas\.lookup$/, 'it looks up a C pointer given as input, and jemalloc crashes when there is none'],
];

/**
 * Valid mallctl names are dot-separated lower-case words and indices. A component is a word (it
 * starts with a letter or _) or an index (digits only): ctl.c parses an index with strtoumax and
 * ignores what follows the digits, so "arena.0x.dss" would reach "arena.0.dss" while the tables
 * here, matching whole names, would not recognise it.
 */
const NAME_SHAPE = /^([a-z_][a-z0-9_]*|[0-9]+)(\.([a-z_][a-z0-9_]*|[0-9]+))*$/;
export const MAX_NAME_LENGTH = 256;

export function isWellFormedName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_SHAPE.test(name);
}

export function isStringName(name: string): boolean {
  return STRING_NAMES.some((pattern) => pattern.test(name));
}

export function isSignedName(name: string): boolean {
  return SIGNED_NAMES.some((pattern) => pattern.test(name));
}

/**
 * arena.<i> accepts i up to narenas (at most MALLOCX_ARENA_LIMIT, 4095, the length of jemalloc's
 * arenas[] array) plus the pseudo-indices 4096 (MALLCTL_ARENAS_ALL) and 4097 (_DESTROYED). These
 * controls handle the pseudo-indices themselves. The others (dirty_decay_ms, muzzy_decay_ms,
 * oversize_threshold, and decay/purge/dss at 4097) pass <i> to arena_get(), which reads
 * arenas[<i>] past the end of the array (ctl.c arena_i_decay_ms_ctl_impl, arena_i_decay):
 * whatever lies there is used as an arena, and the fuzz test crashed on it.
 */
const PSEUDO_ARENA_SAFE = /^(4096\.(purge|decay|dss|initialized)|4097\.initialized|\d+\.(extent_hooks|retain_grow_limit))$/;

function pseudoArenaReason(name: string): string | null {
  const match = /^arena\.(\d+)\.(.+)$/.exec(name);
  if (match === null) return null;
  const index = BigInt(match[1]);
  if ((index !== 4096n && index !== 4097n) || PSEUDO_ARENA_SAFE.test(`${index}.${match[2]}`)) return null;
  return `jemalloc 5.3 does not check arena index ${match[1]} for this control and reads past its arena array`;
}

/** The reason a write to `name` is refused, or null if it may be attempted. */
export function refusedWriteReason(name: string): string | null {
  for (const [pattern, reason] of REFUSED_WRITES) if (pattern.test(name)) return reason;
  return pseudoArenaReason(name);
}

/** The reason a read of `name` is refused, or null if it may be attempted. */
export function refusedReadReason(name: string): string | null {
  for (const [pattern, reason] of REFUSED_READS) if (pattern.test(name)) return reason;
  return pseudoArenaReason(name);
}

/** Linux errno values mallctl returns (asm-generic/errno-base.h). */
export const ERRNO = { EPERM: 1, ENOENT: 2, EAGAIN: 11, ENOMEM: 12, EFAULT: 14, EINVAL: 22, ENOSYS: 38 } as const;
