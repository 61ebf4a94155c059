/**
 * Reading one /proc/<pid>/<file> synchronously, with the kernel's errno turned into an
 * AllocscopeError code. Sync on purpose: a tiny /proc file costs 3-8 us with open+read+close,
 * an fs.promises read 120-160 us (references/limits.md §4, §5).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { AllocscopeError, describe } from '../errors';

/** Where procfs is mounted; a container that sees the host's /proc elsewhere passes its path. */
export const DEFAULT_PROC_ROOT = '/proc';

/** PID_MAX_LIMIT on 64-bit Linux (include/linux/threads.h): no pid reaches 2^22. */
const PID_LIMIT = 4 * 1024 * 1024;

export interface ProcFileOptions {
  /** procfs mount point; default '/proc'. */
  procRoot?: string;
}

/** Throws EINVAL unless `pid` is a positive integer below 2^22. One wording everywhere. */
export function checkPid(pid: unknown): number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 1 || pid >= PID_LIMIT) {
    throw new AllocscopeError('EINVAL', `pid must be a positive integer (a process id below ${PID_LIMIT}); got ${describe(pid)}.`, { pid });
  }
  return pid;
}

/** Throws EINVAL unless `procRoot` is an absolute path. */
export function procRootOf(options: ProcFileOptions | undefined): string {
  const root = options?.procRoot ?? DEFAULT_PROC_ROOT;
  if (typeof root !== 'string' || !root.startsWith('/')) {
    throw new AllocscopeError('EINVAL', `procRoot must be an absolute path like '/proc'; got ${describe(root)}.`, { procRoot: root });
  }
  return root;
}

/**
 * The largest kB figure whose bytes (x 1024) are still a safe integer: 2^43 - 1 kB, just under
 * 8 PiB. kB slots are kept only up to it, so every `kB * 1024` after them (lib/snapshot.ts
 * processBytesFrom, lib/proc/tree.ts) is exact.
 */
export const MAX_SAFE_KB = Math.floor(Number.MAX_SAFE_INTEGER / 1024);

const DIGITS = /^\d+$/;
const HEX_DIGITS = /^[0-9a-fA-F]+$/;

/**
 * The whole number `digits` spells in decimal, or null when it is not only digits or is above
 * `max` (default Number.MAX_SAFE_INTEGER). The kernel prints u64 counters, up to 20 digits; a
 * double holds integers exactly only up to 2^53 - 1, and past that Number() returns a neighbour
 * (Infinity past ~1.8e308). Any decimal above 2^53 - 1 rounds to 2^53 or more, so the comparison
 * with `max` is exact. Unknown is the answer where the text holds more than a number can.
 */
export function procInteger(digits: string, max: number = Number.MAX_SAFE_INTEGER): number | null {
  if (!DIGITS.test(digits)) return null;
  const value = Number(digits);
  return value <= max ? value : null;
}

/**
 * The number `hex` spells, or null when a double cannot hold it exactly. `hex` must be hex digits
 * only, as the caller's pattern has matched them (parseMaps's line pattern does): no second check
 * here, where maps of 60k mappings call this 180k times (a regex test would add ~15% to parseMaps).
 * Addresses are not counts: the kernel prints them up to 16 hex digits, and [vsyscall] (and user
 * space under 5-level paging) lies past 2^53. Every page-aligned value below 2^64 is a double
 * (doubles step by at most 2^11 there), so the kernel's addresses and offsets are all exact; only
 * text no kernel writes comes back null. Up to 13 digits (below 2^52) no BigInt check is needed.
 */
export function procHex(hex: string): number | null {
  const value = parseInt(hex, 16);
  if (hex.length <= 13) return Number.isNaN(value) ? null : value;
  // The long path is rare ([vsyscall]): there the digits are checked too, or BigInt() would throw.
  return Number.isFinite(value) && HEX_DIGITS.test(hex) && BigInt(value) === BigInt(`0x${hex}`) ? value : null;
}

// One buffer for every read on the JS thread: /proc files are read to EOF into it, and it grows
// for maps and environ (a Node process's maps is ~73 KB, 60k VMAs give ~3 MB).
let buffer = Buffer.allocUnsafe(16 * 1024);

/**
 * The whole text of /proc/<pid>/<name>. Throws EINVAL for a bad pid, ESRCH when the process does
 * not exist (or exits mid-read), EACCES when this user may not read that file, EUNSUPPORTED when
 * the process exists but this kernel has no such file (smaps_rollup needs Linux >= 4.14).
 */
export function readProcFile(pid: number, name: string, options?: ProcFileOptions): string {
  const file = new ProcFile(pid, name, options);
  try {
    return file.read();
  } finally {
    file.close();
  }
}

/**
 * One /proc/<pid>/<name> kept open and re-read from offset 0 (pread), for polling: it skips the
 * path lookup, open and close (statm: 0.7 us instead of 3 us, references/limits.md §4). The fd
 * stays bound to the process it was opened for: once that process exits, reads fail with ESRCH,
 * even when its pid has been given to a new process.
 */
export class ProcFile {
  readonly pid: number;
  readonly name: string;
  private readonly root: string;
  private fd: number | null;

  /** Opens the file; throws as readProcFile does. */
  constructor(pid: number, name: string, options?: ProcFileOptions) {
    this.pid = checkPid(pid);
    this.name = name;
    this.root = procRootOf(options);
    try {
      this.fd = openSync(`${this.root}/${pid}/${name}`, 'r');
    } catch (error) {
      throw procError(error as NodeJS.ErrnoException, pid, name, this.root);
    }
  }

  /** The whole file as it is now. Throws ESRCH once the process is gone, EINVAL after close(). */
  read(): string {
    if (this.fd === null) throw new AllocscopeError('EINVAL', `${this.root}/${this.pid}/${this.name} was closed; open it again to read it.`, { pid: this.pid, file: this.name });
    try {
      let length = 0;
      for (;;) {
        if (length === buffer.length) {
          const grown = Buffer.allocUnsafe(buffer.length * 2);
          buffer.copy(grown, 0, 0, length);
          buffer = grown;
        }
        const got = readSync(this.fd, buffer, length, buffer.length - length, length);
        if (got === 0) break;
        length += got;
      }
      return buffer.toString('utf8', 0, length);
    } catch (error) {
      throw procError(error as NodeJS.ErrnoException, this.pid, this.name, this.root);
    }
  }

  /** Closes the fd; idempotent. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function procError(error: NodeJS.ErrnoException, pid: number, name: string, root: string): Error {
  const path = `${root}/${pid}/${name}`;
  switch (error.code) {
    case 'ENOENT':
      if (processDirectoryExists(pid, root)) {
        return new AllocscopeError('EUNSUPPORTED', `${path} does not exist on this kernel (smaps_rollup needs Linux >= 4.14).`, { pid, file: name, errno: error.code });
      }
      return noSuchProcess(pid, root, name, error.code);
    case 'ESRCH':
      // The task exited between open and read (proc_pid_* handlers return -ESRCH then).
      return noSuchProcess(pid, root, name, error.code);
    case 'EACCES':
    case 'EPERM':
      return new AllocscopeError(
        'EACCES',
        `${path} is not readable by uid ${process.getuid?.()}: it needs the target's uid or CAP_SYS_PTRACE (${error.code}).`,
        { pid, file: name, errno: error.code },
      );
    /* c8 ignore next 2 -- EIO, ENOMEM and the like: not the caller's to act on, passed on untouched */
    default:
      return error;
  }
}

function noSuchProcess(pid: number, root: string, name: string, errno: string | undefined): AllocscopeError {
  return new AllocscopeError('ESRCH', `No process ${pid} (${root}/${pid} is gone or was never there).`, { pid, file: name, errno });
}

function processDirectoryExists(pid: number, root: string): boolean {
  try {
    return statSync(`${root}/${pid}`).isDirectory();
  } catch {
    return false;
  }
}
