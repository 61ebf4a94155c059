/**
 * The variants of a compare run: `--allocators glibc,jemalloc,glibc:MALLOC_ARENA_MAX=2` parsed into
 * an allocator and extra environment each, and the ones whose library is missing set aside with
 * the Debian package that adds them (lib/allocators/libraries.ts is the one home of those facts).
 */
import { ALLOCATOR_LIBRARIES, allocatorInstalled } from '../allocators/libraries';
import { AllocscopeError } from '../errors';
import type { AllocatorName } from '../snapshot';

/** The allocators a variant can name (the ones `allocscope run` can preload). */
export const COMPARE_ALLOCATORS: readonly AllocatorName[] = ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc'];

/** The default set: every allocator, and glibc tuned the way its own manual suggests for threads. */
export const DEFAULT_VARIANTS = 'glibc,jemalloc,tcmalloc,mimalloc,glibc:MALLOC_ARENA_MAX=2';

export interface CompareVariant {
  /** As given, e.g. 'glibc:MALLOC_ARENA_MAX=2'. */
  label: string;
  allocator: AllocatorName;
  /** Extra environment of this variant. */
  env: Record<string, string>;
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

function invalid(message: string, value: string): never {
  throw new AllocscopeError('EINVAL', message, { value });
}

/**
 * Parses one variant: ALLOCATOR[:KEY=VALUE[:KEY=VALUE...]]. Throws EINVAL on an unknown allocator,
 * a malformed pair, or LD_PRELOAD (compare sets it: the allocator, then the agent).
 */
export function parseVariant(text: string): CompareVariant {
  const label = text.trim();
  const [name, ...pairs] = label.split(':');
  if (!COMPARE_ALLOCATORS.includes(name as AllocatorName)) {
    invalid(`--allocators: each variant is ALLOCATOR[:KEY=VALUE...] with ALLOCATOR one of ${COMPARE_ALLOCATORS.join(', ')}; got ${JSON.stringify(label)}.`, label);
  }
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? '' : pair.slice(0, eq);
    if (!ENV_KEY.test(key)) invalid(`--allocators: ${JSON.stringify(pair)} in ${JSON.stringify(label)} is not KEY=VALUE (KEY of letters, digits and _).`, label);
    if (key === 'LD_PRELOAD') invalid(`--allocators: ${JSON.stringify(label)} sets LD_PRELOAD, which compare sets itself (the allocator, then the agent).`, label);
    env[key] = pair.slice(eq + 1);
  }
  return { label, allocator: name as AllocatorName, env };
}

/** Parses a comma-separated list; throws EINVAL when it is empty or names a variant twice. */
export function parseVariants(list: string): CompareVariant[] {
  const items = list.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (items.length === 0) invalid('--allocators needs at least one variant, e.g. glibc,jemalloc.', list);
  const variants = items.map(parseVariant);
  const seen = new Set<string>();
  for (const v of variants) {
    if (seen.has(v.label)) invalid(`--allocators names ${JSON.stringify(v.label)} twice; with --repeat N every variant runs N times anyway.`, list);
    seen.add(v.label);
  }
  return variants;
}

/** Null when the variant can run here; else the sentence saying which Debian package adds it. */
export function missingLibrary(variant: CompareVariant): string | null {
  if (allocatorInstalled(variant.allocator)) return null;
  const library = ALLOCATOR_LIBRARIES[variant.allocator];
  return `${variant.allocator} is not installed (${library?.path ?? 'no library known'}): apt-get install ${library?.debianPackage ?? variant.allocator}`;
}
