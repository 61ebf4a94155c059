/**
 * /proc/<pid>/environ, filtered to the variables that choose or tune an allocator. Environments
 * hold secrets (tokens, passwords, keys): nothing else is ever returned, and the rest of the
 * text is dropped as soon as it is split. Needs the target's uid or CAP_SYS_PTRACE.
 *
 * environ shows the environment the process was exec'd with: a later setenv() in the process
 * does not show here, so LD_PRELOAD/MALLOC_* are exactly what the loader and allocator saw.
 */
import { readProcFile, type ProcFileOptions } from './files';

/** Names kept exactly, and prefixes kept with anything after them. */
const EXACT = new Set(['LD_PRELOAD', 'GLIBC_TUNABLES', 'MALLOC_CONF', 'JE_MALLOC_CONF', '_RJEM_MALLOC_CONF']);
const PREFIXES = ['MALLOC_', 'TCMALLOC_', 'MIMALLOC_'] as const;

/** True for a variable name that is about the allocator (and so may be returned). */
export function isAllocatorVariable(name: string): boolean {
  return EXACT.has(name) || PREFIXES.some((prefix) => name.startsWith(prefix) && name.length > prefix.length);
}

/**
 * The allocator variables of a NUL-separated environment block, in their order. A name set
 * twice keeps its first value: getenv() in glibc and musl returns the first match.
 */
export function parseAllocatorEnvironment(block: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const entry of block.split('\0')) {
    const equals = entry.indexOf('=');
    if (equals <= 0) continue;
    const name = entry.slice(0, equals);
    if (isAllocatorVariable(name) && !(name in found)) found[name] = entry.slice(equals + 1);
  }
  return found;
}

/** Reads /proc/<pid>/environ and keeps only the allocator variables; throws ESRCH or EACCES. */
export function readAllocatorEnvironment(pid: number, options?: ProcFileOptions): Record<string, string> {
  return parseAllocatorEnvironment(readProcFile(pid, 'environ', options));
}

/** The LD_PRELOAD entries (separated by spaces or colons, ld.so(8)), in order. */
export function preloadedLibraries(environment: Readonly<Record<string, string>>): string[] {
  return (environment.LD_PRELOAD ?? '').split(/[\s:]+/).filter((entry) => entry !== '');
}
