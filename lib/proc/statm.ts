/**
 * /proc/<pid>/statm: seven page counts, the cheapest memory read there is (0.5-3 us, any user,
 * independent of heap size: references/limits.md §4). Slots: `statm.size` (VmSize),
 * `statm.resident` (RSS), `statm.shared` (RssFile + RssShmem, Linux >= 4.5), `statm.text`,
 * `statm.data` (VmData + VmStk); fields 5 and 7 (lib, dt) are always 0 since Linux 2.6.
 */
import { readFileSync } from 'node:fs';
import { procInteger, readProcFile, type ProcFileOptions } from './files';

const STATM_SLOTS = ['statm.size', 'statm.resident', 'statm.shared', 'statm.text', null, 'statm.data', null] as const;

/**
 * The largest page count whose bytes (x `pageBytes`) are still a safe integer: a count past it is
 * one the readers cannot turn into bytes without rounding (procInteger, lib/proc/files.ts).
 */
export function maxSafePages(pageBytes: number = systemPageSize()): number {
  return Math.floor(Number.MAX_SAFE_INTEGER / pageBytes);
}

/**
 * Parses the text of /proc/<pid>/statm into slots in pages; {} when it is not seven integers each
 * of whose bytes (x `pageBytes`, default this host's page size) is a safe integer.
 */
export function parseStatm(text: string, pageBytes: number = systemPageSize()): Record<string, number> {
  const fields = text.trim().split(' ');
  if (fields.length !== STATM_SLOTS.length) return {};
  const most = maxSafePages(pageBytes);
  const pages = fields.map((field) => procInteger(field, most));
  if (pages.includes(null)) return {};
  const slots: Record<string, number> = {};
  STATM_SLOTS.forEach((slot, at) => {
    if (slot !== null) slots[slot] = pages[at] as number;
  });
  return slots;
}

/** Reads and parses /proc/<pid>/statm; throws ESRCH or EACCES (lib/proc/files.ts). */
export function readStatm(pid: number, options?: ProcFileOptions): Record<string, number> {
  return parseStatm(readProcFile(pid, 'statm', options));
}

/** AT_PAGESZ (include/uapi/linux/auxvec.h): the auxiliary vector entry holding the page size. */
const AT_PAGESZ = 6;

/**
 * The page size statm counts in, from AT_PAGESZ in an auxiliary vector (native-endian pairs of
 * words, ended by AT_NULL); null when there is none. Every process on a host shares it.
 */
export function pageSizeFromAuxv(auxv: Buffer, wordBytes: 4 | 8 = 8): number | null {
  const pairs = Math.floor(auxv.length / (2 * wordBytes));
  const copy = new Uint8Array(pairs * 2 * wordBytes);
  copy.set(auxv.subarray(0, copy.length));
  const words = wordBytes === 8 ? new BigUint64Array(copy.buffer) : new Uint32Array(copy.buffer);
  for (let at = 0; at < pairs; at++) {
    const type = Number(words[2 * at]);
    if (type === 0) break;
    if (type === AT_PAGESZ) {
      const size = Number(words[2 * at + 1]);
      return Number.isSafeInteger(size) && size > 0 ? size : null;
    }
  }
  return null;
}

let pageSize: number | undefined;

/** This host's page size, read once from /proc/self/auxv (4096 on x86-64; 16 or 64 KiB on some arm64). */
export function systemPageSize(): number {
  if (pageSize === undefined) {
    const wordBytes = process.arch === 'ia32' || process.arch === 'arm' ? 4 : 8;
    /* c8 ignore next -- every Linux since 2.6 puts AT_PAGESZ in the auxiliary vector */
    pageSize = pageSizeFromAuxv(readFileSync('/proc/self/auxv'), wordBytes) ?? 4096;
  }
  return pageSize;
}
