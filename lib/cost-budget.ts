/**
 * Sampling this process within a cost budget: the monitor and the exporters read snapshots through
 * a SnapshotGovernor, which predicts what the next allocator read will cost from what the last one
 * cost, and keeps the reads inside two limits:
 *
 * - a duty cycle (default 0.1% of wall time): reads are spaced at least cost / dutyCycle apart,
 *   so the interval stretches as the heap gets more expensive to read;
 * - a per-sample cap (default 1 ms): above it, samples fall back to the cheap tier (statm RSS +
 *   V8, ~6 us whatever the heap, mostly the snapshot's assembly) and say so, and the allocator is
 *   probed again, off the JS thread, only as often as the duty cycle allows.
 *
 * Why: glibc's mallinfo2 walks every free chunk holding each arena's lock, about 0.2 us + 150 ns
 * per free chunk (150 ms at a million free chunks), and jemalloc's epoch costs about 10 us per arena
 * (references/limits.md §1, §3). A monitor that read them blindly at 1 Hz could stall the event loop
 * of exactly the fragmented services it exists to help.
 *
 * Under glibc every read is preceded, on the same worker, by a census of the free lists taken
 * without glibc's locks (glibc.census()'s walk): it counts the chunks mallinfo2 would walk, up to
 * as many as the cap allows, so mallinfo2 is called only when its walk fits the cap; the heap's
 * growth between two samples, or a monitor started on an already fragmented heap, cannot make it
 * hold an arena's lock longer.
 */
import { censusRefusal } from './allocators/glibc';
import { AllocscopeError, checkNumber, describe } from './errors';
import type { Snapshot } from './snapshot';
import { allocator, guardedGlibcSnapshotAsync, snapshot, timedSnapshotAsync } from './targets/self';

export interface CostBudget {
  /** Largest share of wall time spent reading the allocator, from 0.000001 to 0.5. Default 0.001 (0.1%). */
  dutyCycle: number;
  /** Longest an allocator read may take on the JS thread, ms, from 0.01 to 10,000. Default 1. */
  maxSampleMs: number;
}

export const DEFAULT_COST_BUDGET: Readonly<CostBudget> = { dutyCycle: 0.001, maxSampleMs: 1 };

/** Checks a partial budget and fills in the defaults; EINVAL on anything out of range. */
export function resolveBudget(input: Partial<CostBudget> | undefined, label = 'budget'): CostBudget {
  if (input === undefined) return { ...DEFAULT_COST_BUDGET };
  if (typeof input !== 'object' || input === null) {
    throw new AllocscopeError('EINVAL', `${label} must be an object like { dutyCycle: 0.001, maxSampleMs: 1 }; got ${describe(input)}.`);
  }
  const { dutyCycle = DEFAULT_COST_BUDGET.dutyCycle, maxSampleMs = DEFAULT_COST_BUDGET.maxSampleMs } = input;
  return {
    dutyCycle: checkNumber(`${label}.dutyCycle`, dutyCycle, 0.000001, 0.5),
    maxSampleMs: checkNumber(`${label}.maxSampleMs`, maxSampleMs, 0.01, 10_000),
  };
}

/** 'allocator': the allocator was read; 'cheap': RSS and V8 only, the allocator's read was over budget. */
export type SampleTier = 'allocator' | 'cheap';

export interface GovernedSample {
  snapshot: Snapshot;
  tier: SampleTier;
  /** True when the allocator was read on a libuv worker thread rather than the JS thread. */
  offThread: boolean;
  /** What this sample's allocator read cost, ns (on a worker: the read alone); null on the cheap tier. */
  readNs: number | null;
  /** What the governor expects the next allocator read to cost, ns; null before the first one. */
  predictedNs: number | null;
  /** Why this sample is cheap or was read off the JS thread; null for a plain sample. */
  note: string | null;
  /** Under glibc, the lock-free census that decided whether mallinfo2 could be called; else null. */
  census: GlibcCensusDecision | null;
}

export interface GlibcCensusDecision {
  /** Free chunks counted in the bins and fastbins (what mallinfo2's walk visits), at most `limit` + 1. */
  chunks: number;
  /** The most chunks mallinfo2 may walk within the per-sample cap, at the cost per chunk below. */
  limit: number;
  /** The census reached `limit` before the end of the lists: there are more. */
  capped: boolean;
  /** What the census cost on its worker, ns. */
  ns: number;
  /** mallinfo2's cost per free chunk the prediction used, ns (measured here once a read walked 2,000+ chunks). */
  nsPerChunk: number;
}

/**
 * Timers fire up to a millisecond early against performance.now() (libuv counts whole ms), so a
 * read due at t is allowed from t - 1 ms: otherwise a monitor paced exactly at the duty cycle's
 * interval would find every other sample "too soon".
 */
const TIMER_SLACK_MS = 1;

/** The longest wait between probes of an over-budget allocator: an hour. */
const MAX_PROBE_GAP_MS = 3_600_000;

/** mallinfo2's walk per free chunk until one is measured here: ~150 ns (limits.md §1a; 137 ns measured on this project's machine). */
const GLIBC_NS_PER_CHUNK = 150;

/** A read that walked at least this many chunks calibrates the cost per chunk (fewer: fixed costs dominate). */
const CALIBRATION_MIN_CHUNKS = 2_000;

/** A census that saw a list change under it is taken once more before its count is used. */
const CENSUS_TRIES = 2;

/**
 * Decides, sample by sample, whether to read the allocator, where (JS thread or worker) and when.
 * One per consumer (a monitor, an exporter); not shared across threads.
 */
export class SnapshotGovernor {
  readonly budget: CostBudget;
  readonly detail: 'summary' | 'full';
  /** What the last allocator read cost, ns: on the JS thread the whole snapshot (Snapshot.cost.ns), on a worker the read alone. */
  private lastAllocatorNs: number | null = null;
  /** performance.now() from which the budget allows the next allocator read. */
  private nextAllocatorAt = Number.NEGATIVE_INFINITY;
  /** Set while the allocator's read is over the cap: no read on the JS thread until a probe says otherwise. */
  private overCap = false;
  private probeGapMs = 0;
  private readonly allocatorName: string;
  /** mallinfo2's walk per free chunk, ns: the prediction's slope. */
  private glibcNsPerChunk = GLIBC_NS_PER_CHUNK;
  /** Why glibc's census cannot be taken here (then reads are blind, as before it existed); null if it can. */
  private censusRefused: string | null = null;
  /** Nanoseconds spent in allocator reads and cheap reads since construction (on any thread). */
  spentNs = 0;

  constructor(budget: CostBudget, detail: 'summary' | 'full' = 'summary') {
    this.budget = budget;
    this.detail = detail;
    this.allocatorName = allocator().name;
  }

  /** The allocator read's predicted cost, ns; null until one was measured. */
  get predictedNs(): number | null {
    return this.lastAllocatorNs;
  }

  /** The shortest spacing of allocator reads the duty cycle allows, ms (0 before the first read). */
  minIntervalMs(): number {
    return this.lastAllocatorNs === null ? 0 : this.lastAllocatorNs / 1e6 / this.budget.dutyCycle;
  }

  /** True while allocator reads are over the per-sample cap and samples are cheap. */
  get cheapTier(): boolean {
    return this.overCap;
  }

  /**
   * One sample, as deep as the budget allows now. Never throws for budget reasons; a failing read
   * (which the addon does not do) would reject.
   */
  async take(now: number = performance.now()): Promise<GovernedSample> {
    const capNs = this.budget.maxSampleMs * 1e6;
    const dueAt = this.nextAllocatorAt - TIMER_SLACK_MS;
    if (this.overCap) {
      if (now < dueAt) return this.cheap(`allocator read last cost (or, counted first, would cost) ${msText(this.lastAllocatorNs)} ms, over the ${this.budget.maxSampleMs} ms cap: cheap tier (RSS + V8) until the next probe in ${((dueAt - now) / 1000).toFixed(0)} s`);
      return this.offThread(now, capNs);
    }
    if (now < dueAt) {
      // Within budget per sample, but too soon for the duty cycle: the caller asked faster than
      // the budget allows (a monitor stretches its interval instead; a scrape lands here).
      return this.cheap(`allocator read costs ${msText(this.lastAllocatorNs)} ms; the ${formatShare(this.budget.dutyCycle)} duty cycle allows one every ${(this.minIntervalMs() / 1000).toFixed(2)} s`);
    }
    // glibc's read always goes to a worker thread, after a census: its cost follows the number of
    // free chunks (10,000 new free chunks cost 1.5 ms of walk but only ~5 MiB of heap), so the last
    // cost cannot predict the next; the census counts them first, without the lock. On the
    // worker, the JS thread waits only if it needs an arena while the walk holds that arena's lock.
    // Other allocators' reads are bounded (jemalloc: an epoch per arena): on the JS thread, unless near the cap.
    if (this.allocatorName === 'glibc' || (this.lastAllocatorNs !== null && this.lastAllocatorNs > capNs / 2)) {
      return this.offThread(now, capNs);
    }
    const taken = snapshot({ detail: this.detail });
    this.record(taken.cost.ns, now, capNs);
    return { snapshot: taken, tier: 'allocator', offThread: false, readNs: taken.cost.ns, predictedNs: this.lastAllocatorNs, note: null, census: null };
  }

  /**
   * glibc: count the free chunks without the lock, then call mallinfo2 only if walking them fits
   * the cap, both in one trip to a worker. Over the cap, the sample is cheap, and the next census
   * comes after census cost / duty cycle (the census holds no lock, so there is nothing to back
   * off from but its CPU).
   */
  private async probeGlibc(now: number, capNs: number): Promise<GovernedSample> {
    const limit = Math.max(1, Math.floor(capNs / this.glibcNsPerChunk));
    const { census, snapshot: taken, nativeNs } = await guardedGlibcSnapshotAsync({ detail: this.detail }, limit, CENSUS_TRIES);
    this.spentNs += census.ns;
    if (census.status !== 0) {
      // The worker read blind, as it did before the census existed; later samples skip the census.
      this.censusRefused = censusRefusal(census);
      return this.unpredicted(this.fromWorker(taken as Snapshot, nativeNs, now, capNs));
    }
    const chunks = census.listedChunks;
    const decision: GlibcCensusDecision = { chunks, limit, capped: taken === null, ns: census.ns, nsPerChunk: this.glibcNsPerChunk };
    const predictedNs = chunks * this.glibcNsPerChunk;
    if (taken === null) {
      this.lastAllocatorNs = predictedNs;
      this.overCap = true;
      this.probeGapMs = Math.min(MAX_PROBE_GAP_MS, census.ns / 1e6 / this.budget.dutyCycle);
      this.nextAllocatorAt = now + this.probeGapMs;
      const sample = this.cheap(
        `glibc holds more than ${limit} free chunks (counted without its locks in ${msText(census.ns)} ms): mallinfo2 would hold an arena's lock over the ${this.budget.maxSampleMs} ms cap, so it was not called; cheap tier (RSS + V8) until the next census in ${(this.probeGapMs / 1000).toFixed(1)} s`,
      );
      return { ...sample, predictedNs, census: decision };
    }
    const sample = this.fromWorker(taken, nativeNs, now, capNs);
    // The walk's slope, from a read big enough for the walk to dominate its fixed costs.
    // Clamped to 50-1,000 ns: a read slowed by a preemption must not shut reads out for good,
    // nor one that ran all in cache let the next walks grow past the cap.
    if (chunks >= CALIBRATION_MIN_CHUNKS && sample.readNs !== null) this.glibcNsPerChunk = Math.min(1_000, Math.max(50, sample.readNs / chunks));
    return { ...sample, note: `${sample.note}; ${chunks} free chunks counted first without the lock (${msText(census.ns)} ms)`, census: decision };
  }

  /** A read on a worker thread; under glibc, after a census when one can be taken. */
  private offThread(now: number, capNs: number): Promise<GovernedSample> {
    if (this.allocatorName !== 'glibc') return this.probe(now, capNs);
    return this.censusRefused === null ? this.probeGlibc(now, capNs) : this.unpredictedGlibc(now, capNs);
  }

  /** glibc without a census (refused here): the read on a worker, as before the census existed. */
  private async unpredictedGlibc(now: number, capNs: number): Promise<GovernedSample> {
    return this.unpredicted(await this.probe(now, capNs));
  }

  private unpredicted(blind: GovernedSample): GovernedSample {
    return { ...blind, note: `${blind.note}; no census of glibc's free lists (${this.censusRefused}): this read was not predicted` };
  }

  private async probe(now: number, capNs: number): Promise<GovernedSample> {
    const { snapshot: taken, nativeNs } = await timedSnapshotAsync({ detail: this.detail });
    return this.fromWorker(taken, nativeNs, now, capNs);
  }

  /** A read made on a worker thread, accounted for. */
  private fromWorker(taken: Snapshot, nativeNs: number, now: number, capNs: number): GovernedSample {
    // The read itself, as the worker timed it: cost.ns would add the wait for a libuv worker (and
    // the threadpool's start on first use), which says nothing about what a read on the JS thread costs.
    const costNs = Number.isFinite(nativeNs) ? nativeNs : taken.cost.ns;
    const wasOver = this.overCap;
    this.record(costNs, now, capNs);
    const note = this.overCap
      ? `allocator read cost ${msText(costNs)} ms (on a worker thread), over the ${this.budget.maxSampleMs} ms cap: cheap tier until the next probe in ${(this.probeGapMs / 1000).toFixed(0)} s`
      : wasOver
        ? `allocator read back under the ${this.budget.maxSampleMs} ms cap (${msText(costNs)} ms, on a worker thread)`
        : `allocator read on a worker thread (${msText(costNs)} ms)`;
    return { snapshot: taken, tier: 'allocator', offThread: true, readNs: costNs, predictedNs: this.lastAllocatorNs, note, census: null };
  }

  private record(costNs: number, now: number, capNs: number): void {
    this.spentNs += costNs;
    this.lastAllocatorNs = costNs;
    const dutyGapMs = this.minIntervalMs();
    if (costNs > capNs) {
      // Back off: each probe that is still over the cap doubles the gap (never below what the
      // duty cycle requires, never above an hour).
      this.probeGapMs = Math.min(MAX_PROBE_GAP_MS, Math.max(dutyGapMs, this.overCap ? this.probeGapMs * 2 : 0));
      this.overCap = true;
      this.nextAllocatorAt = now + this.probeGapMs;
    } else {
      this.overCap = false;
      this.probeGapMs = 0;
      this.nextAllocatorAt = now + dutyGapMs;
    }
  }

  private cheap(note: string): GovernedSample {
    const taken = snapshot({ allocator: false });
    taken.levelNote = note;
    this.spentNs += taken.cost.ns;
    return { snapshot: taken, tier: 'cheap', offThread: false, readNs: null, predictedNs: this.lastAllocatorNs, note, census: null };
  }
}

function msText(ns: number | null): string {
  return ns === null ? '?' : (ns / 1e6).toFixed(3);
}

function formatShare(share: number): string {
  return `${+(share * 100).toPrecision(3)}%`;
}
