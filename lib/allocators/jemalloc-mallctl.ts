/**
 * What allocscope knows about mallctl names beyond what mallctl itself reports. mallctl tells a
 * value's width (jemalloc's READ() macro sets *oldlenp on a size mismatch, ctl.c) but not whether
 * it is signed or a C string, and a string read as a number, or a number written where jemalloc
 * expects a pointer, would crash the process. So: strings and signed values come from this table
 * (jemalloc 5.3 doc/jemalloc.xml.in and src/ctl.c), and writes that take C pointers or free memory
 * the process may still use are refused.
 */

/** mallctls whose value is a `const char *`. Anything else is read as a number. */
const STRING_NAMES: readonly RegExp[] = [
  /^version$/,
  /^config\.malloc_conf$/,
  /^opt\.(dss|thp|metadata_thp|percpu_arena|stats_print_opts|stats_interval_opts|junk|prof_prefix|malloc_conf)$/,
  /^arena\.\d+\.dss$/,
  /^thread\.prof\.name$/,
  /^prof\.(dump|prefix|log_start)$/,
];

/** mallctls of type ssize_t / int64_t (e.g. -1 disables decay). */
const SIGNED_NAMES: readonly RegExp[] = [
  /decay_ms$/,
  /^opt\.(lg_prof_interval|stats_interval|prof_recent_alloc_max|lg_extent_max_active_fit)$/,
  /^prof\.recent\.alloc_max$/,
];

/** Writes refused, each with the reason given to the user. */
const REFUSED_WRITES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\.extent_hooks$/, 'it takes a pointer to C extent hooks'],
  [/^experimental\./, 'experimental controls take C pointers'],
  [/^arenas\.lookup$/, 'it takes a C pointer'],
  [/^tcache\.(flush|destroy)$/, 'it manages explicit tcaches by index, which only the code that created them can use safely'],
  [/^arena\.\d+\.(reset|destroy)$/, 'it frees every allocation in the arena, including memory the process may still use'],
];

/** Valid mallctl names are dot-separated lower-case words and indices. */
const NAME_SHAPE = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;
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

/** The reason a write to `name` is refused, or null if it may be attempted. */
export function refusedWriteReason(name: string): string | null {
  for (const [pattern, reason] of REFUSED_WRITES) if (pattern.test(name)) return reason;
  return null;
}

/** Linux errno values mallctl returns (asm-generic/errno-base.h). */
export const ERRNO = { EPERM: 1, ENOENT: 2, EAGAIN: 11, ENOMEM: 12, EFAULT: 14, EINVAL: 22, ENOSYS: 38 } as const;
