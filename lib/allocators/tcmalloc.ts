/**
 * gperftools tcmalloc: mapping into Snapshot fields, and the `tcmalloc` namespace.
 *
 * Mapping (gperftools 2.10 src/tcmalloc.cc ExtractStats; references/metrics.md §4):
 *   heap_size (system_bytes) = allocated + thread/central/transfer cache free + page-heap free + unmapped
 * so with allocated = generic.current_allocated_bytes, heapFree = tcmalloc.pageheap_free_bytes and
 * retained = tcmalloc.pageheap_unmapped_bytes, the caches are exactly
 *   threadCache = heap_size - allocated - heapFree - retained,
 * active (spans in use) = heap_size - heapFree - retained, resident = heap_size - retained
 * (metadata excluded: reading it costs another ExtractStats pass, ~4 us), mapped = heap_size.
 */
import { native } from '../binding';
import { AllocscopeError, describe } from '../errors';
import type { SampleReader } from '../sample';
import { NULL_ALLOCATOR_BYTES } from '../snapshot';
import { measureRelease, requireAllocator } from './live';
import type { AllocatorMapping, ReleaseResult } from './types';

export const tcmallocMapping: AllocatorMapping = {
  name: 'tcmalloc',
  rawKey: 'tcmalloc',
  slotPrefix: 'tcmalloc.',
  // Two generic.* properties, each a full ExtractStats (~4 us, limits.md §3).
  costClass: 'moderate',
  bytesFrom(read: SampleReader) {
    const allocated = read('tcmalloc.generic.current_allocated_bytes');
    const heapSize = read('tcmalloc.generic.heap_size');
    const free = read('tcmalloc.tcmalloc.pageheap_free_bytes');
    const unmapped = read('tcmalloc.tcmalloc.pageheap_unmapped_bytes');
    if (allocated === null || heapSize === null || free === null || unmapped === null) return null;
    return {
      ...NULL_ALLOCATOR_BYTES,
      allocated,
      active: heapSize - free - unmapped,
      resident: heapSize - unmapped,
      mapped: heapSize,
      retained: unmapped,
      threadCache: heapSize - allocated - free - unmapped,
      heapFree: free,
    };
  },
  extraRatios() {
    return {};
  },
};

const PROPERTY_SHAPE = /^[a-z_]+\.[a-z0-9_.]+$/;

/** Any numeric property by name, e.g. "generic.current_allocated_bytes" or "tcmalloc.pageheap_free_bytes". */
function property(name: string): number {
  if (typeof name !== 'string' || name.length > 256 || !PROPERTY_SHAPE.test(name)) {
    throw new AllocscopeError('EINVAL', `tcmalloc.property takes a property name such as "generic.heap_size"; got ${describe(name)}.`, { name });
  }
  requireAllocator('tcmalloc', 'tcmalloc.property()');
  const value = native().tcmallocProperty(name);
  if (value === null) {
    throw new AllocscopeError(
      'ENOCTL',
      `tcmalloc has no numeric property "${name}". Known ones include generic.current_allocated_bytes, ` +
        'generic.heap_size, tcmalloc.pageheap_free_bytes, tcmalloc.pageheap_unmapped_bytes.',
      { name },
    );
  }
  return value;
}

/** MallocExtension_ReleaseFreeMemory: returns all free page-heap spans to the kernel (madvise). */
function releaseFreeMemory(): ReleaseResult {
  requireAllocator('tcmalloc', 'tcmalloc.releaseFreeMemory()');
  return measureRelease('tcmalloc', 'MallocExtension_ReleaseFreeMemory()', () => {
    native().tcmallocReleaseFreeMemory();
  });
}

/** MallocExtension_GetStats: tcmalloc's own human-readable report. */
function statsText(): string {
  requireAllocator('tcmalloc', 'tcmalloc.statsText()');
  return native().tcmallocStatsText() ?? '';
}

/** tcmalloc's own interfaces. Every call throws ENOALLOCATOR when tcmalloc does not serve malloc. */
export const tcmalloc = { property, releaseFreeMemory, statsText };

export function tcmallocRelease(): ReleaseResult {
  return tcmalloc.releaseFreeMemory();
}
