/** The allocator serving malloc in this process, and guards for calls that need a specific one. */
import { native, type NativeDetection, SAMPLE_WITH_STATUS } from '../binding';
import { AllocscopeError } from '../errors';
import type { AllocatorName } from '../snapshot';
import { ALLOCATOR_LIBRARIES } from './libraries';
import type { ReleaseResult } from './types';

let detected: NativeDetection | undefined;

/** Detection result (cached: malloc is bound once, at start-up). */
export function liveDetection(): NativeDetection {
  detected ??= native().detect();
  return detected;
}

/**
 * Throws ENOALLOCATOR unless `name` serves malloc here. Under a prefixed jemalloc both heaps are
 * live: jemalloc's (the allocator reported) and plain malloc's (live.mallocAllocator, glibc on
 * Linux), so both namespaces answer.
 */
export function requireAllocator(name: AllocatorName, call: string): void {
  const live = liveDetection();
  if (live.name === name || live.mallocAllocator === name) return;
  const library = ALLOCATOR_LIBRARIES[name];
  const howTo =
    library !== undefined
      ? `LD_PRELOAD=${library.path} (Debian package ${library.debianPackage})`
      : 'no LD_PRELOAD of another allocator';
  throw new AllocscopeError(
    'ENOALLOCATOR',
    `${call} needs ${name}, but malloc in this process is served by ${live.name} (${live.detectedBy}). ` +
      `Start the process with ${howTo}, or use the namespace of ${live.name}.`,
    { wanted: name, live: live.name },
  );
}

/** Resident set size right now, from a kept-open /proc/self/statm (about 1 us). */
export function rssBytesNow(): number {
  const names = slotNames();
  const slots = new Float64Array(names.length);
  native().sampleInto(slots, 0, 0);
  return slots[names.indexOf('statm.resident')] * slots[names.indexOf('pageSize')];
}

let names: string[] | undefined;
/** The addon's sample slot names (fixed for the life of the process). */
export function slotNames(): string[] {
  names ??= native().sampleSlotNames();
  return names;
}

/** Flags for a sample at the two detail levels. */
export function sampleFlags(withStatus: boolean): number {
  return withStatus ? SAMPLE_WITH_STATUS : 0;
}

/** Runs a release call and measures what it returned to the kernel. */
export function measureRelease(allocator: AllocatorName, action: string, release: () => void): ReleaseResult {
  const rssBeforeBytes = rssBytesNow();
  const start = process.hrtime.bigint();
  release();
  const durationNs = Number(process.hrtime.bigint() - start);
  const rssAfterBytes = rssBytesNow();
  const returnedBytes = rssBeforeBytes - rssAfterBytes;
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
  const note =
    returnedBytes > 0
      ? `${action} returned ${mib(returnedBytes)} to the kernel (RSS ${mib(rssBeforeBytes)} -> ${mib(rssAfterBytes)}).`
      : `${action} returned nothing measurable (RSS ${mib(rssBeforeBytes)} -> ${mib(rssAfterBytes)}): ` +
        'free memory that is scattered in small pieces between live blocks cannot be given back whole pages at a time.';
  return { allocator, action, rssBeforeBytes, rssAfterBytes, returnedBytes, durationNs, note };
}
