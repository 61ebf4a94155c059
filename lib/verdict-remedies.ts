/**
 * What to do about a verdict, cheapest first: each remedy says what it costs, what to run, and
 * which evidence called for it. Nothing here promises an effect it has not measured: purge()
 * reports what it returned when the caller tried it, and a different allocator is something to
 * try and measure (`allocscope run --allocator jemalloc`, side by side with the current one), never a sure fix.
 */
import { ALLOCATOR_LIBRARIES } from './allocators/libraries';
import type { ReleaseResult } from './allocators/types';
import { formatBytes } from './report/format';
import type { AllocatorName } from './snapshot';

export type RemedyId =
  | 'purge'
  | 'v8-heap-snapshot'
  | 'native-leak-tools'
  | 'malloc-arena-max'
  | 'jemalloc'
  | 'jemalloc-decay'
  | 'recycle-workers';

/** Cheapest first: a call in the running process, a look inside it, a restart with a setting, a different allocator, a deployment change. */
export const REMEDY_COST_ORDER: readonly RemedyId[] = [
  'purge',
  'v8-heap-snapshot',
  'native-leak-tools',
  'malloc-arena-max',
  'jemalloc-decay',
  'jemalloc',
  'recycle-workers',
];

export type RemedyCost = 'runtime-call' | 'diagnostic' | 'restart-with-setting' | 'restart-with-preload' | 'deployment';

export interface Remedy {
  id: RemedyId;
  /** 'investigate' finds the cause; 'mitigate' gives memory back or bounds it. */
  kind: 'investigate' | 'mitigate';
  cost: RemedyCost;
  /** 1 = cheapest, in REMEDY_COST_ORDER. */
  rank: number;
  sentence: string;
  /** Calls or shell lines to try. */
  commands: string[];
  /** Keys of the evidence that called for it (Evidence.key). */
  because: string[];
  /** What a purge() the caller tried returned; only on 'purge'. */
  measured: ReleaseResult | null;
}

/** Facts the remedies are chosen from. */
export interface RemedyContext {
  allocator: AllocatorName;
  liveGrowth: boolean;
  jsHeapGrowth: boolean;
  retention: boolean;
  /** V8 external memory (Buffers) grew along with live bytes. */
  externalGrowth: boolean;
  arenaCount: number | null;
  manyArenas: number;
  release: ReleaseResult | null;
  /** Evidence keys of notable ratios that point at free memory held (arenaFree, allocatorRetention, ...). */
  heldRatioKeys: string[];
}

/** Below this a tried purge "returned nothing measurable" (page-granular RSS jitters by ~100s of KiB). */
const MEASURABLE_RETURN_BYTES = 1024 * 1024;

const JEMALLOC_DECAY = 'dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true';

function remedy(id: RemedyId, kind: Remedy['kind'], cost: RemedyCost, sentence: string, commands: string[], because: string[], measured: ReleaseResult | null = null): Remedy {
  return { id, kind, cost, rank: REMEDY_COST_ORDER.indexOf(id) + 1, sentence, commands, because, measured };
}

function purgeRemedy(c: RemedyContext): Remedy | null {
  // musl has no malloc_trim, and an unknown allocator has no call to make (purge() says ENOALLOCATOR).
  if (c.allocator === 'musl' || c.allocator === 'unknown') return null;
  const because = ['attribution', ...c.heldRatioKeys];
  const commands = ["import { purge } from 'allocscope'; purge()  // malloc_trim(0) under glibc"];
  if (c.release === null) {
    return remedy(
      'purge',
      'mitigate',
      'runtime-call',
      'Try purge() (malloc_trim(0) under glibc; the allocator\'s own release call under the others) and pass its result as { release } to diagnose(): ' +
        'it measures how much RSS really goes back. It changes no live bytes and holds the allocator\'s locks while it runs.',
      commands,
      because,
    );
  }
  const r = c.release;
  const sentence =
    r.returnedBytes >= MEASURABLE_RETURN_BYTES
      ? `purge() (${r.action}) returned ${formatBytes(r.returnedBytes)} of RSS (${formatBytes(r.rssBeforeBytes)} -> ${formatBytes(r.rssAfterBytes)}): ` +
        'run it after bursts or on a timer; it holds the allocator\'s locks while it walks the free memory.'
      : `purge() (${r.action}) returned nothing measurable (${formatBytes(r.returnedBytes)}): the free memory sits in pages that still hold live ` +
        'blocks, which no trim can give back; the remedies below change how memory is laid out.';
  return remedy('purge', 'mitigate', 'runtime-call', sentence, commands, [...because, 'release'], r);
}

function arenaRemedy(c: RemedyContext): Remedy | null {
  if (c.allocator !== 'glibc' || c.arenaCount === null || c.arenaCount < c.manyArenas) return null;
  return remedy(
    'malloc-arena-max',
    'mitigate',
    'restart-with-setting',
    `${c.arenaCount} glibc arenas: each thread that meets contention gets its own arena (up to 8 per core), and each keeps its own free memory. ` +
      'MALLOC_ARENA_MAX=2 caps them; threads that malloc heavily then wait a little more for a lock.',
    ['MALLOC_ARENA_MAX=2 node server.js'],
    ['arenas', 'attribution'],
  );
}

function allocatorRemedy(c: RemedyContext): Remedy {
  if (c.allocator === 'jemalloc') {
    return remedy(
      'jemalloc-decay',
      'mitigate',
      'restart-with-setting',
      'jemalloc keeps freed pages for its decay time (10 s dirty by default) before returning them; shorter decay and a background purging thread ' +
        'return them sooner, for some CPU. Try it and measure: `allocscope run` with and without the setting.',
      [`allocscope run --allocator jemalloc --env MALLOC_CONF=${JEMALLOC_DECAY} --duration 10m --out decay.ndjson -- node server.js`],
      ['attribution'],
    );
  }
  const library = ALLOCATOR_LIBRARIES.jemalloc?.path ?? 'libjemalloc.so.2';
  return remedy(
    'jemalloc',
    'mitigate',
    'restart-with-preload',
    `jemalloc lays out memory by size class and returns freed pages on a timer, which often holds less under fragmenting workloads than ${c.allocator} - ` +
      'and sometimes does not. Try it and measure it on this workload: the same load under each `allocscope run --allocator`.',
    [
      `LD_PRELOAD=${library} MALLOC_CONF=${JEMALLOC_DECAY} node server.js`,
      `allocscope run --allocator jemalloc --env MALLOC_CONF=${JEMALLOC_DECAY} --duration 10m --out jemalloc.ndjson -- node server.js`,
    ],
    ['attribution'],
  );
}

function recycleRemedy(c: RemedyContext): Remedy {
  const because = [c.retention ? 'attribution' : null, c.liveGrowth ? 'trend.allocated' : null, c.jsHeapGrowth ? 'trend.heapUsed' : null].filter((k): k is string => k !== null);
  return remedy(
    'recycle-workers',
    'mitigate',
    'deployment',
    'Recycle workers: restart each worker process after a number of requests or above an RSS limit, so growth cannot outlive the process ' +
      '(a bound, not a fix: it hides a leak rather than finding it).',
    ['cluster / pm2 max_memory_restart / a supervisor restarting above an RSS limit'],
    because,
  );
}

/** The remedies for the kinds of growth found, cheapest first, one of each. */
export function remediesFor(c: RemedyContext): Remedy[] {
  const out: Remedy[] = [];
  if (c.liveGrowth) {
    out.push(
      remedy(
        'native-leak-tools',
        'investigate',
        'diagnostic',
        'Live bytes rise with the process: leak-like. Find what allocates them with a native leak tool: heaptrack, valgrind (memcheck or massif), ' +
          'bcc memleak on the running process, or jemalloc heap profiling (prof:true) where jemalloc was built with it.',
        ['heaptrack node server.js', 'memleak-bpfcc -p PID', 'valgrind --tool=massif node server.js'],
        ['trend.allocated'],
      ),
    );
  }
  if (c.jsHeapGrowth || c.externalGrowth) {
    out.push(
      remedy(
        'v8-heap-snapshot',
        'investigate',
        'diagnostic',
        (c.jsHeapGrowth ? 'V8\'s live heap rises: take two V8 heap snapshots some minutes apart and compare what grew (Chrome DevTools, Memory tab, Comparison view). ' : '') +
          (c.externalGrowth ? 'V8 external memory (Buffers, addon objects) rises with live bytes: a heap snapshot shows which JS objects hold it. ' : '') +
          'Writing one pauses the process and needs about the heap\'s size again in memory.',
        ["require('node:v8').writeHeapSnapshot()", 'node --heapsnapshot-signal=SIGUSR2 server.js'],
        [c.jsHeapGrowth ? 'trend.heapUsed' : null, c.externalGrowth ? 'trend.external' : null].filter((k): k is string => k !== null),
      ),
    );
  }
  if (c.retention) {
    const purge = purgeRemedy(c);
    if (purge !== null) out.push(purge);
    const arenas = arenaRemedy(c);
    if (arenas !== null) out.push(arenas);
    out.push(allocatorRemedy(c));
  }
  if (c.liveGrowth || c.jsHeapGrowth || c.retention) out.push(recycleRemedy(c));
  return out.sort((a, b) => a.rank - b.rank);
}
