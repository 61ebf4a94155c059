/**
 * Streams snapshots to a file as they are taken: NDJSON (one Snapshot per line) or CSV (a fixed
 * set of columns). Each sample is written with one synchronous write, so a run that is killed or
 * whose target dies leaves a file complete up to its last sample.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
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

export class SampleWriter {
  private fd: number | null;
  readonly format: SampleFormat;
  /** Samples written so far. */
  written = 0;

  constructor(readonly path: string) {
    this.format = formatFor(path);
    try {
      // 'w': a run owns its file; an existing file is replaced, as shells' > would.
      this.fd = openSync(path, 'w');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new AllocscopeError(
        code === 'EACCES' || code === 'EPERM' ? 'EACCES' : 'EINVAL',
        `cannot write --out ${path}: ${(error as Error).message}. Choose a writable file path.`,
        { path, errno: code },
      );
    }
    if (this.format === 'csv') this.writeText(`${CSV_COLUMNS.join(',')}\n`);
  }

  write(snapshot: Snapshot): void {
    const line = this.format === 'ndjson' ? JSON.stringify(snapshot) : CSV_COLUMNS.map((c) => valueAt(snapshot, c)).join(',');
    this.writeText(`${line}\n`);
    this.written++;
  }

  private writeText(text: string): void {
    if (this.fd === null) return;
    try {
      writeSync(this.fd, text);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new AllocscopeError('EINVAL', `writing ${this.path} failed (${code ?? (error as Error).message}); ${this.written} samples were written before it.`, { path: this.path, errno: code, written: this.written });
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
