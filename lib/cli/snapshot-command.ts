/** `allocscope snapshot [--json] [--full]`: this (short-lived) process's snapshot, as a smoke test. */
import { snapshot } from '../targets/self';
import type { Snapshot } from '../snapshot';
import { formatBytes, formatRatio, formatTable } from '../report/format';
import { parseArgs } from './args';

export function describeSnapshot(s: Snapshot): string {
  const a = s.allocatorBytes;
  const p = s.processBytes;
  const rows: string[][] = [
    ['allocated (live)', formatBytes(a.allocated)],
    ['active', formatBytes(a.active)],
    ['allocator resident', formatBytes(a.resident)],
    ['allocator mapped', formatBytes(a.mapped)],
    ['free in heap', formatBytes(a.heapFree)],
    ['thread caches', formatBytes(a.threadCache)],
    ['RSS', formatBytes(p.rss)],
    ['RSS anon', formatBytes(p.rssAnon)],
    ['peak RSS', formatBytes(p.peakRss)],
    ['V8 heap used / total', s.v8Bytes === null ? '-' : `${formatBytes(s.v8Bytes.heapUsed)} / ${formatBytes(s.v8Bytes.heapTotal)}`],
    ['externalFrag (active/allocated)', formatRatio(s.ratios.externalFrag)],
    ['allocatorRetention (resident/active)', formatRatio(s.ratios.allocatorRetention)],
    ['nonAllocatorRss (rss/resident)', formatRatio(s.ratios.nonAllocatorRss)],
    ['totalOverhead (rss/allocated)', formatRatio(s.ratios.totalOverhead)],
    ['arenaFree (glibc mapped/allocated)', formatRatio(s.ratios.arenaFree)],
    ['smallBinFrag (jemalloc)', formatRatio(s.ratios.smallBinFrag)],
  ];
  const title =
    `pid ${s.pid}: malloc is ${s.allocator.name}${s.allocator.version ? ` ${s.allocator.version}` : ''}\n` +
    `  (${s.allocator.detectedBy})\n  sample cost ${(s.cost.ns / 1000).toFixed(1)} us (${s.cost.class})`;
  return `${title}\n\n${formatTable(['figure', 'value'], rows)}`;
}

export function snapshotCommand(argv: readonly string[], out: (text: string) => void): number {
  const { flags } = parseArgs(argv, { json: 'boolean', full: 'boolean' });
  const s = snapshot({ detail: flags.full === true ? 'full' : 'summary' });
  out(flags.json === true ? JSON.stringify(s, null, 2) : describeSnapshot(s));
  return 0;
}
