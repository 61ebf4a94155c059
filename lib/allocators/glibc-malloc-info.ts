/**
 * Parser for glibc's malloc_info(0) XML (glibc malloc.c __malloc_info; shape in
 * references/metrics.md §3.2). Tolerant by design: glibc has changed the numbers and elements
 * over versions (bugs 24026/24867; fastbins gone on master), so a missing element is null and an
 * unknown one is ignored. Never throws on any input.
 *
 * Numbers are kept as glibc prints them. Note that it prints regular-bin chunks with
 * chunksize_nomask(): each size carries the chunk's PREV_INUSE bit (65 for a 64-byte chunk), so
 * those buckets and `rest` exceed mallinfo2's figures by one byte per binned chunk:
 * fordblks = fast.bytes + rest.bytes - (rest.count - number of arenas), each top chunk excepted.
 */

export interface FreeChunkTotals {
  count: number;
  bytes: number;
}

export interface SizeBucket {
  /** "size" for a regular or fast bin, "unsorted" for the unsorted bin. */
  kind: 'size' | 'unsorted';
  fromBytes: number;
  toBytes: number;
  totalBytes: number;
  count: number;
}

export interface MallocInfoArena {
  /** heap nr: 0 is the main arena. */
  index: number;
  sizes: SizeBucket[];
  fast: FreeChunkTotals | null;
  /** Binned free chunks plus the top chunk. */
  rest: FreeChunkTotals | null;
  systemCurrentBytes: number | null;
  systemMaxBytes: number | null;
  aspaceTotalBytes: number | null;
  aspaceMprotectBytes: number | null;
  /** Non-main arenas only (glibc >= 2.27): the number of 64 MiB sub-heaps. */
  aspaceSubheaps: number | null;
}

export interface MallocInfo {
  version: number | null;
  arenas: MallocInfoArena[];
  totals: {
    fast: FreeChunkTotals | null;
    rest: FreeChunkTotals | null;
    mmap: FreeChunkTotals | null;
    systemCurrentBytes: number | null;
    systemMaxBytes: number | null;
    aspaceTotalBytes: number | null;
    aspaceMprotectBytes: number | null;
  };
  /** Free chunks by size over all arenas: buckets with the same range merged, ordered by size. */
  freeChunkHistogram: SizeBucket[];
}

type Attributes = Record<string, string>;

const ELEMENT = /<(\w+)((?:\s+[\w-]+="[^"]*")*)\s*\/?>/g;
const ATTRIBUTE = /([\w-]+)="([^"]*)"/g;

// Records keyed by names from the input have no prototype: type="__proto__" is just a key.
const record = <T>(): Record<string, T> => Object.create(null) as Record<string, T>;

function attributesOf(text: string): Attributes {
  const out: Attributes = record();
  for (const match of text.matchAll(ATTRIBUTE)) out[match[1]] = match[2];
  return out;
}

function count(value: string | undefined): number | null {
  if (value === undefined || !/^\d+$/.test(value)) return null;
  const parsed = Number(value);
  return Number.isSafeInteger(parsed) ? parsed : null;
}

interface Collector {
  sizes: SizeBucket[];
  totals: Record<string, FreeChunkTotals>;
  system: Record<string, number>;
  aspace: Record<string, number>;
}

function newCollector(): Collector {
  return { sizes: [], totals: record(), system: record(), aspace: record() };
}

function collect(into: Collector, name: string, attrs: Attributes): void {
  if (name === 'size' || name === 'unsorted') {
    const fromBytes = count(attrs.from);
    const toBytes = count(attrs.to);
    const totalBytes = count(attrs.total);
    const chunks = count(attrs.count);
    if (fromBytes !== null && toBytes !== null && totalBytes !== null && chunks !== null) {
      into.sizes.push({ kind: name, fromBytes, toBytes, totalBytes, count: chunks });
    }
  } else if (name === 'total' && attrs.type !== undefined) {
    const chunks = count(attrs.count);
    const bytes = count(attrs.size);
    if (chunks !== null && bytes !== null) into.totals[attrs.type] = { count: chunks, bytes };
  } else if ((name === 'system' || name === 'aspace') && attrs.type !== undefined) {
    const bytes = count(attrs.size);
    if (bytes !== null) (name === 'system' ? into.system : into.aspace)[attrs.type] = bytes;
  }
}

export function parseMallocInfo(xml: string): MallocInfo {
  const arenas: MallocInfoArena[] = [];
  const outer = newCollector();
  let current: { index: number; c: Collector } | null = null;
  let version: number | null = null;
  const text = typeof xml === 'string' ? xml : '';
  const closeHeap = () => {
    if (current === null) return;
    const c = current.c;
    arenas.push({
      index: current.index,
      sizes: c.sizes,
      fast: c.totals.fast ?? null,
      rest: c.totals.rest ?? null,
      systemCurrentBytes: c.system.current ?? null,
      systemMaxBytes: c.system.max ?? null,
      aspaceTotalBytes: c.aspace.total ?? null,
      aspaceMprotectBytes: c.aspace.mprotect ?? null,
      aspaceSubheaps: c.aspace.subheaps ?? null,
    });
    current = null;
  };
  const tags = /<\/heap>|<(\w+)((?:\s+[\w-]+="[^"]*")*)\s*\/?>/g;
  for (const match of text.matchAll(tags)) {
    if (match[0] === '</heap>') {
      closeHeap();
      continue;
    }
    const name = match[1];
    const attrs = attributesOf(match[2]); // the attribute group always takes part, if empty
    if (name === 'malloc') {
      version = count(attrs.version);
    } else if (name === 'heap') {
      closeHeap();
      current = { index: count(attrs.nr) ?? arenas.length, c: newCollector() };
    } else {
      collect(current !== null ? current.c : outer, name, attrs);
    }
  }
  closeHeap();
  return {
    version,
    arenas,
    totals: {
      fast: outer.totals.fast ?? null,
      rest: outer.totals.rest ?? null,
      mmap: outer.totals.mmap ?? null,
      systemCurrentBytes: outer.system.current ?? null,
      systemMaxBytes: outer.system.max ?? null,
      aspaceTotalBytes: outer.aspace.total ?? null,
      aspaceMprotectBytes: outer.aspace.mprotect ?? null,
    },
    freeChunkHistogram: mergeBuckets(arenas.flatMap((arena) => arena.sizes)),
  };
}

/**
 * Buckets with the same kind and range summed over arenas. A range whose sum would not be a safe
 * integer (beyond 8 PiB: no process's heap, only forged input) is left out rather than rounded.
 */
function mergeBuckets(buckets: SizeBucket[]): SizeBucket[] {
  const merged = new Map<string, SizeBucket>();
  for (const bucket of buckets) {
    const key = `${bucket.kind}:${bucket.fromBytes}:${bucket.toBytes}`;
    const seen = merged.get(key);
    if (seen === undefined) {
      merged.set(key, { ...bucket });
    } else {
      seen.totalBytes += bucket.totalBytes;
      seen.count += bucket.count;
    }
  }
  return [...merged.values()]
    .filter((bucket) => Number.isSafeInteger(bucket.totalBytes) && Number.isSafeInteger(bucket.count))
    .sort((a, b) => a.fromBytes - b.fromBytes || a.toBytes - b.toBytes || a.kind.localeCompare(b.kind));
}

// The element pattern is exported for the property tests of this parser.
export const MALLOC_INFO_ELEMENT = ELEMENT;
