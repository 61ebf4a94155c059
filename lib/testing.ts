/**
 * Assertions for other projects' test suites: does this function leak native memory? Measured
 * with the allocator's exact books (live bytes), not RSS noise, with GC forced between phases so
 * JS wrappers that own native memory are collected.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AllocscopeError, checkNumber, describe } from './errors';
import type { AllocatorName, Snapshot } from './snapshot';
import { snapshot } from './targets/self';

export interface GrowthOptions {
  /** Calls measured (default 10,000). */
  iterations?: number;
  /** Calls made first and not measured: caches, JIT, lazy initialisation (default 10% of iterations, at least 100). */
  warmup?: number;
  /** Measured phases; the growth is the median over phases, so one noisy phase cannot decide (default 10). */
  rounds?: number;
}

export interface NativeGrowth {
  allocator: AllocatorName;
  /** What was measured: the allocator's live bytes, or RSS where the allocator keeps no such figure (mimalloc). */
  basis: 'allocated' | 'rss';
  iterations: number;
  /** Median over rounds of live-byte growth per call (null when basis is 'rss'). */
  liveBytesPerIteration: number | null;
  /** Median over rounds of RSS growth per call. */
  rssBytesPerIteration: number;
  /** Live bytes (or RSS) after warm-up and after each round. */
  points: number[];
}

let forcedGc: (() => void) | undefined;
/** global.gc without --expose-gc (V8 exposes it to new contexts once the flag is set). */
function gc(): void {
  if (forcedGc === undefined) {
    setFlagsFromString('--expose-gc');
    forcedGc = runInNewContext('gc') as () => void;
  }
  forcedGc();
}

/** App-live bytes: jemalloc counts objects parked in thread caches as allocated; others do not. */
function liveBytes(s: Snapshot): number | null {
  const { allocated, threadCache } = s.allocatorBytes;
  if (allocated === null) return null;
  return s.allocator.name === 'jemalloc' ? allocated - (threadCache ?? 0) : allocated;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function checkOptions(options: GrowthOptions, call: string): Required<GrowthOptions> {
  if (options === null || typeof options !== 'object') {
    throw new AllocscopeError('EINVAL', `${call} options must be an object like { iterations: 10000 }; got ${describe(options)}.`);
  }
  const iterations = checkNumber('iterations', options.iterations ?? 10_000, 10, 1e9);
  const rounds = checkNumber('rounds', options.rounds ?? 10, 3, 1000);
  if (!Number.isInteger(iterations) || !Number.isInteger(rounds) || iterations < rounds) {
    throw new AllocscopeError('EINVAL', `${call}: iterations and rounds are whole numbers, iterations at least rounds; got ${iterations} and ${rounds}.`);
  }
  const warmup = checkNumber('warmup', options.warmup ?? Math.max(100, Math.round(iterations / 10)), 0, 1e9);
  return { iterations, rounds, warmup };
}

async function repeat(fn: () => unknown, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const result = fn();
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') await result;
  }
}

/**
 * Calls `fn` `iterations` times after a warm-up and reports live-byte and RSS growth per call
 * (median over `rounds` phases, GC forced before each measurement).
 */
export async function measureNativeGrowth(fn: () => unknown, options: GrowthOptions = {}): Promise<NativeGrowth> {
  if (typeof fn !== 'function') throw new AllocscopeError('EINVAL', `measureNativeGrowth(fn) takes a function; got ${describe(fn)}.`);
  const { iterations, rounds, warmup } = checkOptions(options, 'measureNativeGrowth');
  await repeat(fn, warmup);
  gc();
  const first = snapshot();
  const basis = liveBytes(first) === null ? 'rss' : 'allocated';
  const live: number[] = [liveBytes(first) ?? 0];
  const rss: number[] = [first.processBytes.rss ?? 0];
  const perRound = Math.floor(iterations / rounds);
  for (let round = 0; round < rounds; round++) {
    await repeat(fn, perRound);
    gc();
    const s = snapshot();
    live.push(liveBytes(s) ?? 0);
    rss.push(s.processBytes.rss ?? 0);
  }
  const growth = (points: number[]) => median(points.slice(1).map((v, i) => v - points[i])) / perRound;
  return {
    allocator: first.allocator.name,
    basis,
    iterations: perRound * rounds,
    liveBytesPerIteration: basis === 'allocated' ? growth(live) : null,
    rssBytesPerIteration: growth(rss),
    points: basis === 'allocated' ? live : rss,
  };
}

export interface NoLeakOptions extends GrowthOptions {
  /** Growth per call tolerated, in bytes (default 0: any sustained growth is a leak). */
  maxBytesPerIteration?: number;
}

/**
 * Throws AllocscopeError `ELEAK` (with the measurements in `details`) when `fn` keeps native
 * memory per call. An accusation must hold three times in a row: the first measurement within
 * the limit clears `fn`, so a burst from another thread (V8's GC and compiler threads allocate
 * too) cannot fail a clean function, while a real leak exceeds the limit every time (one clean
 * run in 20 was accused under jemalloc in CI with two of three).
 */
export async function assertNoNativeLeak(fn: () => unknown, options: NoLeakOptions = {}): Promise<NativeGrowth> {
  const limit = checkNumber('maxBytesPerIteration', options.maxBytesPerIteration ?? 0, 0, 1e12);
  const measurements: NativeGrowth[] = [];
  let over = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const growth = await measureNativeGrowth(fn, options);
    measurements.push(growth);
    const perCall = growth.liveBytesPerIteration ?? growth.rssBytesPerIteration;
    // Sub-byte medians are rounding of headers and caches, not a leak.
    if (perCall <= limit + 0.5) break;
    over++;
  }
  const last = measurements[measurements.length - 1];
  if (over === 3) {
    const perCall = measurements.map((m) => (m.liveBytesPerIteration ?? m.rssBytesPerIteration).toFixed(1)).join(', ');
    throw new AllocscopeError(
      'ELEAK',
      `native memory grows by ${perCall} bytes per call (${last.basis} bytes, ${last.allocator}; limit ${limit}). ` +
        'Something allocated by each call is never freed: look for a missing free/delete or a cache without a bound.',
      { measurements, limit },
    );
  }
  return last;
}
