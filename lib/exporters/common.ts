/**
 * What the Prometheus and OpenTelemetry exporters share: the one table of metrics (names, units,
 * help, how each is read from a Snapshot), the snapshot source a scrape reads from (a monitor's
 * latest sample, or a read of its own within the cost budget), and the loader of optional peers.
 */
import { AllocscopeError, checkNumber, describe } from '../errors';
import { type CostBudget, resolveBudget, SnapshotGovernor } from '../cost-budget';
import { Monitor } from '../monitor';
import type { AllocatorBytes, ProcessBytes, Snapshot, SnapshotRatios, V8Bytes } from '../snapshot';

export type MetricUnit = 'bytes' | 'ratio' | 'seconds';

export interface MetricDefinition {
  /** process, allocator, v8 or sample; null for the ratios (their name says what they relate). */
  group: 'process' | 'allocator' | 'v8' | 'sample' | null;
  /** snake_case field name within the group, without the unit. */
  field: string;
  unit: MetricUnit;
  help: string;
  read(snapshot: Snapshot): number | null;
}

const snake = (camel: string) => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The Snapshot fields exported, with their meaning (snapshot.ts says the same at each field). */
const PROCESS_HELP: Readonly<Record<keyof ProcessBytes, string>> = {
  rss: 'Resident set size of the process',
  rssAnon: 'Resident anonymous memory (heap, stacks, anonymous mmaps)',
  rssFile: 'Resident file-backed memory (code, mapped files)',
  rssShmem: 'Resident shared memory',
  swap: 'Swapped-out memory',
  peakRss: 'Peak resident set size since the process started',
  pss: 'Proportional set size (shared pages divided among their users)',
  lazyFree: 'Pages freed with MADV_FREE still counted in RSS',
};
const ALLOCATOR_HELP: Readonly<Record<keyof AllocatorBytes, string>> = {
  allocated: 'Live bytes the allocator has handed to the application',
  active: 'Bytes in allocator pages holding live objects (jemalloc stats.active, tcmalloc spans in use)',
  resident: 'Bytes the allocator believes are resident',
  mapped: 'Address space the allocator has mapped read/write',
  retained: 'Address space kept by the allocator with its pages returned to the kernel',
  dirty: 'Unused allocator pages not yet purged',
  muzzy: 'Allocator pages given back with MADV_FREE, resident until reclaimed',
  metadata: 'Allocator metadata',
  threadCache: 'Free objects held in per-thread and central caches',
  heapFree: 'Free bytes inside the heap (glibc fordblks, tcmalloc page-heap free)',
  releasable: 'Bytes malloc_trim could return from the top of the main heap (glibc keepcost)',
};
const V8_HELP: Readonly<Record<keyof V8Bytes, string>> = {
  heapTotal: 'V8 heap committed',
  heapUsed: 'V8 heap used by live JavaScript objects',
  external: 'Memory of C++ objects bound to JavaScript objects, as V8 counts it',
  arrayBuffers: 'Memory of ArrayBuffers and SharedArrayBuffers (part of external)',
};
const RATIO_HELP: Readonly<Record<keyof SnapshotRatios, string>> = {
  externalFrag: 'active / allocated: free space inside pages held for size classes',
  allocatorRetention: 'resident / active: free pages the allocator keeps resident',
  nonAllocatorRss: 'rss / resident: memory the allocator does not account for',
  totalOverhead: 'rss / allocated (Redis mem_fragmentation_ratio)',
  smallBinFrag: 'jemalloc: 1 + small-bin free regions / allocated',
  arenaFree: 'glibc: mapped / allocated',
};

function bytesMetrics<T>(group: 'process' | 'allocator' | 'v8', help: Readonly<Record<keyof T & string, string>>, pick: (s: Snapshot) => T | null): MetricDefinition[] {
  return (Object.keys(help) as Array<keyof T & string>).map((key) => ({
    group,
    field: snake(key),
    unit: 'bytes' as const,
    help: `${help[key]}, bytes`,
    read: (s: Snapshot) => {
      const value = pick(s)?.[key];
      return typeof value === 'number' ? value : null;
    },
  }));
}

/** Every exported metric, in one place. */
export const METRICS: readonly MetricDefinition[] = [
  ...bytesMetrics<ProcessBytes>('process', PROCESS_HELP, (s) => s.processBytes),
  ...bytesMetrics<AllocatorBytes>('allocator', ALLOCATOR_HELP, (s) => s.allocatorBytes),
  ...bytesMetrics<V8Bytes>('v8', V8_HELP, (s) => s.v8Bytes),
  ...(Object.keys(RATIO_HELP) as Array<keyof SnapshotRatios>).flatMap((key): MetricDefinition[] => [
    { group: null, field: snake(key), unit: 'ratio', help: RATIO_HELP[key], read: (s) => s.ratios[key]?.ratio ?? null },
    {
      group: null,
      field: `${snake(key)}_delta`,
      unit: 'bytes',
      help: `The byte difference behind ${key} (numerator - denominator), bytes`,
      read: (s) => s.ratios[key]?.bytes ?? null,
    },
  ]),
  { group: 'sample', field: 'cost', unit: 'seconds', help: 'What taking the snapshot cost, seconds', read: (s) => s.cost.ns / 1e9 },
  { group: 'sample', field: 'timestamp', unit: 'seconds', help: 'When the snapshot was taken, seconds since the Unix epoch', read: (s) => s.time / 1000 },
];

/** The labels (attributes) of every metric: who serves malloc and how deep the read went. */
export function labelsOf(snapshot: Snapshot): { allocator: string; level: string } {
  return { allocator: snapshot.allocator.name, level: snapshot.level };
}

export interface SourceOptions {
  /** Read a running monitor's latest snapshot instead of sampling (no extra cost). */
  monitor?: Monitor;
  /** The cost budget of the exporter's own reads (without a monitor). Defaults: 0.1% duty, 1 ms cap. */
  budget?: Partial<CostBudget>;
  /**
   * Detail of the exporter's own reads (without a monitor). 'full' adds /proc/self/status (the
   * file/shmem split and swap, ~13 us) and, under jemalloc, the per-bin walk. Default 'summary'.
   */
  detail?: 'summary' | 'full';
  /**
   * A snapshot is reused for this long, ms (0 to 3,600,000): every metric of one scrape shows the
   * same snapshot, and scrapes closer together than this cost nothing. Default 1000.
   */
  maxAgeMs?: number;
}

/** Where scrapes get their snapshot from. */
export class ScrapeSource {
  private readonly monitor: Monitor | null;
  private readonly governor: SnapshotGovernor | null;
  private readonly maxAgeMs: number;
  private last: { at: number; snapshot: Promise<Snapshot | null> } | null = null;

  constructor(options: SourceOptions = {}, label = 'exporter options') {
    if (typeof options !== 'object' || options === null) {
      throw new AllocscopeError('EINVAL', `${label} must be an object; got ${describe(options)}.`);
    }
    if (options.monitor !== undefined && !(options.monitor instanceof Monitor)) {
      throw new AllocscopeError('EINVAL', `${label}.monitor must be a handle returned by monitor(); got ${describe(options.monitor)}.`);
    }
    this.monitor = options.monitor ?? null;
    this.maxAgeMs = checkNumber(`${label}.maxAgeMs`, options.maxAgeMs ?? 1000, 0, 3_600_000);
    const budget = resolveBudget(options.budget, `${label}.budget`);
    const detail = options.detail ?? 'summary';
    if (detail !== 'summary' && detail !== 'full') {
      throw new AllocscopeError('EINVAL', `${label}.detail must be 'summary' or 'full'; got ${describe(detail)}.`, { detail });
    }
    this.governor = this.monitor === null ? new SnapshotGovernor(budget, detail) : null;
  }

  /** The snapshot for a scrape now; null when a monitor has not sampled yet. */
  read(now: number = performance.now()): Promise<Snapshot | null> {
    if (this.monitor !== null) return Promise.resolve(this.monitor.latest);
    if (this.last !== null && now - this.last.at <= this.maxAgeMs) return this.last.snapshot;
    const governor = this.governor as SnapshotGovernor;
    const snapshot = governor.take(now).then((sample) => sample.snapshot);
    this.last = { at: now, snapshot };
    return snapshot;
  }
}

/**
 * Loads an optional peer dependency, or says how to install it (ENODEP). The user's own copy is
 * what matters (a prom-client Registry only takes metrics of its own module), so exporters also
 * accept the module itself as an option.
 */
export function loadPeer<T>(name: string, forWhat: string): T {
  try {
    return require(name) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new AllocscopeError('ENODEP', `${forWhat} needs the package "${name}", which is not installed: run npm install ${name}.`, { name });
    }
    throw error;
  }
}
