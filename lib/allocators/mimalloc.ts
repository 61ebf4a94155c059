/**
 * mimalloc 2.x: mapping into Snapshot fields, and the `mimalloc` namespace.
 *
 * Mapping (references/metrics.md §5): mapped = mi_process_info current_commit. Everything else is
 * null: release builds compile out per-allocation statistics (MI_STAT=0), so there is no
 * allocated figure, and on Linux its current_rss is the commit, not RSS (read /proc instead).
 */
import { native, type NativeMimallocProcessInfo } from '../binding';
import { AllocscopeError, describe } from '../errors';
import type { SampleReader } from '../sample';
import { NULL_ALLOCATOR_BYTES } from '../snapshot';
import { measureRelease, requireAllocator } from './live';
import type { AllocatorMapping, ReleaseResult } from './types';

export const mimallocMapping: AllocatorMapping = {
  name: 'mimalloc',
  rawKey: 'mimalloc',
  slotPrefix: 'mimalloc.',
  // mi_process_info is essentially one getrusage (0.5 us; limits.md §3).
  costClass: 'cheap',
  bytesFrom(read: SampleReader) {
    const commit = read('mimalloc.current_commit');
    if (commit === null) return null;
    return { ...NULL_ALLOCATOR_BYTES, mapped: commit };
  },
  extraRatios() {
    return {};
  },
};

/** mi_process_info's figures, names untouched (msecs; bytes; page_faults counts major faults only). */
function processInfo(): NativeMimallocProcessInfo {
  requireAllocator('mimalloc', 'mimalloc.processInfo()');
  return native().mimallocProcessInfo() as NativeMimallocProcessInfo;
}

/** mi_collect(force): frees what mimalloc can; `force` returns memory to the OS eagerly (can be slow). */
function collect(force: boolean = false): ReleaseResult {
  if (typeof force !== 'boolean') {
    throw new AllocscopeError('EINVAL', `mimalloc.collect(force) takes a boolean; got ${describe(force)}.`, { force });
  }
  requireAllocator('mimalloc', 'mimalloc.collect()');
  return measureRelease('mimalloc', `mi_collect(${force})`, () => {
    native().mimallocCollect(force);
  });
}

/** mimalloc's own interfaces. Every call throws ENOALLOCATOR when mimalloc does not serve malloc. */
export const mimalloc = { processInfo, collect };

export function mimallocRelease(): ReleaseResult {
  return mimalloc.collect(true);
}
