/**
 * monitor(): watches this process's heap health from inside a Node service. Samples on an unref'd
 * timer (it never keeps the process alive), keeps a bounded history, emits `sample`, `verdict`
 * and `threshold` events, and is an async iterator of snapshots. Every read goes through a
 * SnapshotGovernor (cost-budget.ts), so the monitor predicts and caps its own cost: it stretches
 * its interval when the allocator gets expensive to read and falls back to RSS + V8 when one read
 * would take longer than the per-sample cap, saying so in each sample.
 */
import { EventEmitter } from 'node:events';
import { AllocscopeError, checkInteger, checkNumber, describe } from './errors';
import { type CostBudget, type GlibcCensusDecision, resolveBudget, type SampleTier, SnapshotGovernor } from './cost-budget';
import type { Snapshot } from './snapshot';
import { diagnose, type DiagnoseOptions, type Verdict } from './verdict';

/** Limits that emit a `threshold` event when a sample crosses above them (once per crossing). */
export interface MonitorThresholds {
  /** Process RSS, bytes. */
  rssBytes?: number;
  /** The allocator's live bytes (allocated), bytes. */
  allocatedBytes?: number;
  /** V8's used heap, bytes. */
  heapUsedBytes?: number;
  /** RSS / allocated (Snapshot.ratios.totalOverhead), e.g. 1.5. */
  totalOverheadRatio?: number;
  /** Allocator resident / allocated (Snapshot.ratios.externalFrag), e.g. 1.4. */
  externalFragRatio?: number;
}

export type ThresholdName = keyof MonitorThresholds;

const THRESHOLD_READERS: Readonly<Record<ThresholdName, (s: Snapshot) => number | null>> = {
  rssBytes: (s) => s.processBytes.rss,
  allocatedBytes: (s) => s.allocatorBytes.allocated,
  heapUsedBytes: (s) => s.v8Bytes?.heapUsed ?? null,
  totalOverheadRatio: (s) => s.ratios.totalOverhead?.ratio ?? null,
  externalFragRatio: (s) => s.ratios.externalFrag?.ratio ?? null,
};

export interface MonitorOptions {
  /** Wanted time between samples, ms, from 10 to 86,400,000. Default 1000. The budget may stretch it. */
  intervalMs?: number;
  /** Snapshots kept (oldest dropped first), from 10 to 100,000. Default 300 (5 minutes at 1 Hz, ~1 MB). */
  historySize?: number;
  /** Snapshot detail of allocator samples (see SnapshotOptions). Default 'summary'. */
  detail?: 'summary' | 'full';
  /** The cost budget: duty cycle (default 0.1% of wall time) and per-sample cap (default 1 ms). */
  budget?: Partial<CostBudget>;
  /** Samples between verdicts (diagnose() over the whole history), 0 for none, up to 100,000. Default 30. */
  verdictEvery?: number;
  /** Options passed to diagnose() (thresholds, arenaCount). */
  diagnose?: DiagnoseOptions;
  thresholds?: MonitorThresholds;
}

export interface SampleEvent {
  snapshot: Snapshot;
  /** 'allocator' or 'cheap' (RSS + V8 only, because the allocator's read was over budget). */
  tier: SampleTier;
  /** The allocator was read on a libuv worker thread (its cost was unknown or near the cap). */
  offThread: boolean;
  /** Why the sample is cheap or off-thread; null for a plain sample. */
  note: string | null;
  /**
   * What the allocator read cost, ns: on the JS thread, the whole snapshot; on a worker, the read
   * alone (the time it held the allocator's locks). Null on the cheap tier.
   */
  readNs: number | null;
  /** Under glibc: the lock-free count of free chunks that decided whether mallinfo2 was called. */
  census: GlibcCensusDecision | null;
  /** The wait before the next sample, ms: intervalMs, or longer when the budget stretched it. */
  nextIntervalMs: number;
}

export interface ThresholdEvent {
  name: ThresholdName;
  value: number;
  limit: number;
  snapshot: Snapshot;
}

export interface MonitorStats {
  samples: number;
  cheapSamples: number;
  offThreadSamples: number;
  verdicts: number;
  /** ns spent reading snapshots and computing verdicts since start (any thread). */
  spentNs: number;
  /** spentNs over the wall time since start. */
  dutyCycle: number;
  /** The current wait between samples, ms. */
  intervalMs: number;
  /** The last error a read or a verdict raised (emitted as 'error' only when someone listens). */
  lastError: Error | null;
}

export interface MonitorEvents {
  sample: [SampleEvent];
  verdict: [Verdict];
  threshold: [ThresholdEvent];
  error: [Error];
  stop: [];
}

interface IteratorState {
  queue: Snapshot[];
  wake: ((result: IteratorResult<Snapshot>) => void) | null;
}

function resolveOptions(options: MonitorOptions | undefined) {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new AllocscopeError('EINVAL', `monitor options must be an object like { intervalMs: 1000 }; got ${describe(options)}.`);
  }
  const o = options ?? {};
  const detail = o.detail ?? 'summary';
  if (detail !== 'summary' && detail !== 'full') {
    throw new AllocscopeError('EINVAL', `monitor detail must be 'summary' or 'full'; got ${describe(detail)}.`, { detail });
  }
  const thresholds: Array<[ThresholdName, number]> = [];
  if (o.thresholds !== undefined) {
    if (typeof o.thresholds !== 'object' || o.thresholds === null) {
      throw new AllocscopeError('EINVAL', `monitor thresholds must be an object like { rssBytes: 2e9 }; got ${describe(o.thresholds)}.`);
    }
    for (const [name, limit] of Object.entries(o.thresholds)) {
      if (!(name in THRESHOLD_READERS)) {
        throw new AllocscopeError('EINVAL', `monitor thresholds has no "${name}"; use ${Object.keys(THRESHOLD_READERS).join(', ')}.`, { name });
      }
      if (limit !== undefined) thresholds.push([name as ThresholdName, checkNumber(`thresholds.${name}`, limit, 0, Number.MAX_SAFE_INTEGER)]);
    }
  }
  if (o.diagnose !== undefined) diagnose([], o.diagnose); // EINVAL now, not at the first verdict
  return {
    intervalMs: checkNumber('intervalMs', o.intervalMs ?? 1000, 10, 86_400_000),
    historySize: checkInteger('historySize', o.historySize ?? 300, 10, 100_000),
    verdictEvery: checkInteger('verdictEvery', o.verdictEvery ?? 30, 0, 100_000),
    budget: resolveBudget(o.budget),
    detail: detail as 'summary' | 'full',
    diagnoseOptions: o.diagnose,
    thresholds,
  };
}

/** A running monitor; see monitor(). */
export class Monitor extends EventEmitter<MonitorEvents> implements AsyncIterable<Snapshot> {
  private readonly options: ReturnType<typeof resolveOptions>;
  private readonly governor: SnapshotGovernor;
  /** Ring buffer of snapshots; `ringStart` is the oldest. */
  private readonly ring: Snapshot[] = [];
  private ringStart = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = performance.now();
  private readonly above = new Set<ThresholdName>();
  private readonly iterators = new Set<IteratorState>();
  private samplesSinceVerdict = 0;
  private verdictNs = 0;
  private nextVerdictAt = 0;
  private counts = { samples: 0, cheapSamples: 0, offThreadSamples: 0, verdicts: 0 };
  private currentIntervalMs: number;
  private lastError: Error | null = null;
  private stopped = false;
  /** The latest verdict; null until the first one. */
  verdict: Verdict | null = null;

  constructor(options?: MonitorOptions) {
    super();
    this.options = resolveOptions(options);
    this.governor = new SnapshotGovernor(this.options.budget, this.options.detail);
    this.currentIntervalMs = this.options.intervalMs;
    this.schedule(0);
  }

  /** The latest snapshot; null before the first sample. */
  get latest(): Snapshot | null {
    return this.ring.length === 0 ? null : this.ring[(this.ringStart + this.ring.length - 1) % this.ring.length];
  }

  /** The kept snapshots, oldest first (a copy). */
  history(): Snapshot[] {
    return [...this.ring.slice(this.ringStart), ...this.ring.slice(0, this.ringStart)];
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  stats(): MonitorStats {
    const elapsedNs = (performance.now() - this.startedAt) * 1e6;
    const spentNs = this.governor.spentNs + this.verdictNs;
    return { ...this.counts, spentNs, dutyCycle: elapsedNs > 0 ? spentNs / elapsedNs : 0, intervalMs: this.currentIntervalMs, lastError: this.lastError };
  }

  /** Ends sampling and every async iterator; idempotent. A read in flight is discarded. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const state of this.iterators) state.wake?.({ value: undefined, done: true });
    this.iterators.clear();
    this.emit('stop');
  }

  /**
   * Each new snapshot, from now until stop(). Leaving a `for await` loop ends that iterator only;
   * the monitor goes on. A slow consumer gets at most historySize queued snapshots (oldest dropped).
   */
  [Symbol.asyncIterator](): AsyncIterator<Snapshot> {
    const state: IteratorState = { queue: [], wake: null };
    if (!this.stopped) this.iterators.add(state);
    return {
      next: () => {
        const queued = state.queue.shift();
        if (queued !== undefined) return Promise.resolve({ value: queued, done: false });
        if (this.stopped || !this.iterators.has(state)) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (state.wake = resolve));
      },
      return: () => {
        this.iterators.delete(state);
        state.wake?.({ value: undefined, done: true });
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(), delayMs);
    this.timer.unref();
  }

  private tick(): void {
    this.timer = null;
    this.governor.take().then(
      (sample) => {
        if (this.stopped) return;
        // The duty cycle stretches the interval; over the cap the samples are cheap and keep the pace.
        this.currentIntervalMs = this.governor.cheapTier ? this.options.intervalMs : Math.max(this.options.intervalMs, this.governor.minIntervalMs());
        this.schedule(this.currentIntervalMs);
        const { snapshot, tier, offThread, note, readNs, census } = sample;
        this.accept({ snapshot, tier, offThread, note, readNs, census, nextIntervalMs: this.currentIntervalMs });
      },
      (error: unknown) => {
        this.fail(error);
        this.schedule(this.currentIntervalMs);
      },
    );
  }

  private accept(event: SampleEvent): void {
    const { snapshot } = event;
    this.counts.samples++;
    if (event.tier === 'cheap') this.counts.cheapSamples++;
    if (event.offThread) this.counts.offThreadSamples++;
    if (this.ring.length < this.options.historySize) this.ring.push(snapshot);
    else {
      this.ring[this.ringStart] = snapshot;
      this.ringStart = (this.ringStart + 1) % this.ring.length;
    }
    for (const state of this.iterators) {
      if (state.wake !== null) {
        const wake = state.wake;
        state.wake = null;
        wake({ value: snapshot, done: false });
      } else {
        state.queue.push(snapshot);
        if (state.queue.length > this.options.historySize) state.queue.shift();
      }
    }
    this.emit('sample', event);
    this.checkThresholds(snapshot);
    this.maybeDiagnose();
  }

  private checkThresholds(snapshot: Snapshot): void {
    for (const [name, limit] of this.options.thresholds) {
      const value = THRESHOLD_READERS[name](snapshot);
      if (value === null) continue;
      if (value > limit) {
        // Once per crossing: re-armed when a sample is back at or under the limit.
        if (this.above.has(name)) continue;
        this.above.add(name);
        this.emit('threshold', { name, value, limit, snapshot });
      } else this.above.delete(name);
    }
  }

  private maybeDiagnose(): void {
    if (this.options.verdictEvery === 0 || ++this.samplesSinceVerdict < this.options.verdictEvery) return;
    const now = performance.now();
    // Verdicts share the duty cycle: diagnose() over 300 snapshots costs about 1 ms.
    if (now < this.nextVerdictAt) return;
    this.samplesSinceVerdict = 0;
    const start = process.hrtime.bigint();
    try {
      this.verdict = diagnose(this.history(), this.options.diagnoseOptions);
    } catch (error) {
      this.fail(error);
      return;
    } finally {
      const ns = Number(process.hrtime.bigint() - start);
      this.verdictNs += ns;
      this.nextVerdictAt = now + ns / 1e6 / this.options.budget.dutyCycle;
    }
    this.counts.verdicts++;
    this.emit('verdict', this.verdict);
  }

  private fail(error: unknown): void {
    const wrapped = error instanceof Error ? error : new Error(String(error));
    this.lastError = wrapped;
    // Never an unhandled 'error' event: the host process is sacred.
    if (this.listenerCount('error') > 0) this.emit('error', wrapped);
  }
}

/**
 * Starts watching this process: the first sample right away, then one every intervalMs (or
 * longer, within the cost budget). Throws AllocscopeError EINVAL for bad options.
 */
export function monitor(options?: MonitorOptions): Monitor {
  return new Monitor(options);
}
