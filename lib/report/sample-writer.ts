/**
 * Streams snapshots to a file as they are taken: NDJSON (one Snapshot per line) or CSV (a fixed
 * set of columns). Each sample is written synchronously before the next is taken, so a run that is
 * killed or whose target dies leaves a file complete up to its last sample; a write that fails
 * (a full disk) is cut back to the last whole line, so the file never ends in half a sample.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { AllocscopeError } from '../errors';
import type { Snapshot } from '../snapshot';

export type SampleFormat = 'ndjson' | 'csv';

/** CSV columns: a dotted path into the Snapshot each. */
export const CSV_COLUMNS = [
  'time',
  'monotonicNs',
  'pid',
  'source',
  'level',
  'allocator.name',
  'allocatorBytes.allocated',
  'allocatorBytes.active',
  'allocatorBytes.resident',
  'allocatorBytes.mapped',
  'allocatorBytes.retained',
  'allocatorBytes.dirty',
  'allocatorBytes.muzzy',
  'allocatorBytes.metadata',
  'allocatorBytes.threadCache',
  'allocatorBytes.heapFree',
  'allocatorBytes.releasable',
  'processBytes.rss',
  'processBytes.rssAnon',
  'processBytes.rssFile',
  'processBytes.rssShmem',
  'processBytes.swap',
  'processBytes.peakRss',
  'processBytes.pss',
  'v8Bytes.heapUsed',
  'v8Bytes.heapTotal',
  'ratios.externalFrag.ratio',
  'ratios.allocatorRetention.ratio',
  'ratios.nonAllocatorRss.ratio',
  'ratios.totalOverhead.ratio',
  'cost.ns',
] as const;

function valueAt(snapshot: Snapshot, path: string): string {
  let value: unknown = snapshot;
  for (const key of path.split('.')) value = value === null || value === undefined ? undefined : (value as Record<string, unknown>)[key];
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatFor(path: string): SampleFormat {
  if (path.endsWith('.ndjson') || path.endsWith('.jsonl')) return 'ndjson';
  if (path.endsWith('.csv')) return 'csv';
  throw new AllocscopeError('EINVAL', `--out must name a .ndjson (or .jsonl) or .csv file; got ${JSON.stringify(path)}.`, { path });
}

/** The sentence for a failed open or write, by errno (write(2), open(2)). */
function reason(code: string | undefined, error: Error): string {
  switch (code) {
    case 'ENOSPC':
      return 'the file system is full (ENOSPC)';
    case 'EDQUOT':
      return 'the disk quota is used up (EDQUOT)';
    case 'EFBIG':
      return 'the file is larger than this file system or RLIMIT_FSIZE allows (EFBIG)';
    case 'EISDIR':
      return 'it is a directory (EISDIR)';
    case 'ENOENT':
      return 'its directory does not exist (ENOENT)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'EROFS':
      return 'the file system is read-only (EROFS)';
    default:
      return error.message;
  }
}

export class SampleWriter {
  private fd: number | null;
  /** Bytes of whole lines in the file: where a failed write is cut back to. */
  private bytes = 0;
  readonly format: SampleFormat;
  /** Samples written so far. */
  written = 0;

  constructor(readonly path: string) {
    this.format = formatFor(path);
    try {
      // 'w': a run owns its file; an existing file is replaced, as shells' > would (README
      // "Reliability"). A directory is refused by open(2) itself (EISDIR).
      this.fd = openSync(path, 'w');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new AllocscopeError(
        code === 'EACCES' || code === 'EPERM' ? 'EACCES' : 'EINVAL',
        `cannot write --out ${path}: ${reason(code, error as Error)}. Choose a writable file path.`,
        { path, errno: code },
      );
    }
    try {
      if (this.format === 'csv') this.writeText(`${CSV_COLUMNS.join(',')}\n`);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  write(snapshot: Snapshot): void {
    const line = this.format === 'ndjson' ? JSON.stringify(snapshot) : CSV_COLUMNS.map((c) => valueAt(snapshot, c)).join(',');
    this.writeText(`${line}\n`);
    this.written++;
  }

  /**
   * Writes all of `text` or none of it. write(2) may write part of a buffer when the disk fills
   * (and fs.writeSync returns the short count without retrying), so the rest is written in a loop;
   * on failure the file is truncated back to its last whole line and the writer stops writing.
   */
  private writeText(text: string): void {
    if (this.fd === null) return;
    const buffer = Buffer.from(text, 'utf8');
    let done = 0;
    try {
      // No position (not pwrite): --out may be a FIFO, where pwrite(2) fails with ESPIPE.
      while (done < buffer.length) done += writeSync(this.fd, buffer, done, buffer.length - done);
      this.bytes += buffer.length;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      let cut = true;
      try {
        if (done > 0) ftruncateSync(this.fd, this.bytes);
      } catch {
        cut = false;
      }
      this.close();
      throw new AllocscopeError(
        'EIO',
        `writing --out ${this.path} failed: ${reason(code, error as Error)}. ${this.written} samples were written to it before` +
          `${cut ? ', each a whole line' : ''}; free some space or choose another --out.`,
        { path: this.path, errno: code, written: this.written },
      );
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
