/** Where each replaceable allocator lives on Debian 12 (x86_64), and the package that installs it. */
import { existsSync } from 'node:fs';
import type { AllocatorName } from '../snapshot';

export interface AllocatorLibrary {
  /** Path for LD_PRELOAD. */
  path: string;
  /** Debian package that installs it. */
  debianPackage: string;
}

export const ALLOCATOR_LIBRARIES: Readonly<Partial<Record<AllocatorName, AllocatorLibrary>>> = {
  jemalloc: { path: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', debianPackage: 'libjemalloc2' },
  tcmalloc: { path: '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4', debianPackage: 'libtcmalloc-minimal4' },
  mimalloc: { path: '/usr/lib/x86_64-linux-gnu/libmimalloc.so.2', debianPackage: 'libmimalloc2.0' },
};

/** True when `name` can be used here: glibc always, the others when their library is installed. */
export function allocatorInstalled(name: AllocatorName): boolean {
  if (name === 'glibc') return true;
  const library = ALLOCATOR_LIBRARIES[name];
  return library !== undefined && existsSync(library.path);
}
