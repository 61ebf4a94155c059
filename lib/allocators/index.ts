/** The table of supported allocators: a new allocator adds one row here and one file beside it. */
import type { AllocatorName } from '../snapshot';
import { glibcMapping, glibcRelease } from './glibc';
import { jemallocMapping, jemallocRelease } from './jemalloc';
import { mimallocMapping, mimallocRelease } from './mimalloc';
import { tcmallocMapping, tcmallocRelease } from './tcmalloc';
import type { AllocatorMapping, ReleaseResult } from './types';

interface AllocatorEntry {
  mapping: AllocatorMapping;
  /** purge(): the allocator-appropriate way to give free memory back. */
  release: () => ReleaseResult;
}

const ENTRIES: Partial<Record<AllocatorName, AllocatorEntry>> = {
  glibc: { mapping: glibcMapping, release: glibcRelease },
  jemalloc: { mapping: jemallocMapping, release: jemallocRelease },
  tcmalloc: { mapping: tcmallocMapping, release: tcmallocRelease },
  mimalloc: { mapping: mimallocMapping, release: mimallocRelease },
};

export function allocatorEntry(name: AllocatorName): AllocatorEntry | undefined {
  // Own entries only: a name from a peer (the agent's JSON) such as "constructor" is no allocator.
  return Object.hasOwn(ENTRIES, name) ? ENTRIES[name] : undefined;
}

export const KNOWN_ALLOCATORS: readonly AllocatorName[] = ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc', 'musl', 'unknown'];
