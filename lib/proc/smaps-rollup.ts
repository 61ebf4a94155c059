/**
 * /proc/<pid>/smaps_rollup (Linux >= 4.14): PSS, anonymous/file/shmem split, private dirty,
 * swap, lazily freed pages, as slots `smaps_rollup.<Key>` in kB.
 *
 * Reading it walks every page table of every VMA under the target's mmap_lock: ~7 us per
 * resident MiB plus ~0.2 us per VMA (references/limits.md §4: 6.9 ms at 1 GiB, 13.7 ms at 60k
 * VMAs), and the target's mmap/munmap/brk can wait meanwhile. So every read goes through a gate
 * that refuses huge targets unless forced and reads one pid at most once per interval, the
 * interval stretched so the walk never takes more than a small share of wall time.
 */
import { performance } from 'node:perf_hooks';
import { AllocscopeError, checkNumber, describe } from '../errors';
import { MAX_SAFE_KB, procInteger, readProcFile, type ProcFileOptions } from './files';
import { readStatm, systemPageSize } from './statm';

/**
 * Parses smaps_rollup text: each "<Key>: <n> kB" line after the [rollup] header. A figure whose
 * bytes (x 1024) a double cannot hold is left out, as an odd line is: unknown, never a wrong number.
 */
export function parseSmapsRollup(text: string): Record<string, number> {
  const slots: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (match === null) continue;
    const kb = procInteger(match[2], MAX_SAFE_KB);
    if (kb !== null) slots[`smaps_rollup.${match[1]}`] = kb;
  }
  return slots;
}

export interface SmapsGatePolicy {
  /** Above this RSS a read is refused unless forced. Default 4 GiB: a ~29 ms walk. */
  maxRssBytes: number;
  /** At most one read of a pid per this many ms. Default 10 s. */
  minIntervalMs: number;
  /**
   * Largest share of wall time the walk may take: the interval grows to predicted cost / this.
   * Default 0.001 (0.1%, the stall budget of references/limits.md "Implications" §3).
   */
  maxDutyRatio: number;
}

export const DEFAULT_SMAPS_GATE_POLICY: Readonly<SmapsGatePolicy> = Object.freeze({
  maxRssBytes: 4 * 1024 ** 3,
  minIntervalMs: 10_000,
  maxDutyRatio: 0.001,
});

/** Predicted walk: 20 us fixed + 7 us per resident MiB + 0.2 us per VMA (references/limits.md §4). */
export function predictSmapsRollupNs(rssBytes: number, vmaCount = 0): number {
  return Math.round(20_000 + (7_000 * rssBytes) / 1024 ** 2 + 200 * vmaCount);
}

export interface SmapsGateInput {
  /** The target's RSS now (statm); null when unknown, which only a forced read passes. */
  rssBytes: number | null;
  /** Ms since the last read of this pid; null when never read. */
  msSinceLastRead: number | null;
  /** VMA count when known (from maps): adds its share to the prediction. */
  vmaCount?: number;
  /** Read even above maxRssBytes (the interval still applies). */
  force?: boolean;
}

export interface SmapsGateDecision {
  allowed: boolean;
  /** Why the read was refused, as a sentence; null when allowed. */
  reason: string | null;
  /** Predicted duration of the walk, ns (null when the RSS is unknown). */
  predictedNs: number | null;
  /** The interval that applies to this target, ms: minIntervalMs or longer for a large one. */
  intervalMs: number;
  /** Ms until a read would be allowed; 0 when allowed now, null when only force helps. */
  retryInMs: number | null;
}

/** Decides whether one smaps_rollup read may happen now. Pure: no clock, no state. */
export function decideSmapsRead(input: SmapsGateInput, policy: SmapsGatePolicy = DEFAULT_SMAPS_GATE_POLICY): SmapsGateDecision {
  const { rssBytes, msSinceLastRead, vmaCount = 0, force = false } = input;
  const predictedNs = rssBytes === null ? null : predictSmapsRollupNs(rssBytes, vmaCount);
  const intervalMs = Math.max(policy.minIntervalMs, predictedNs === null ? 0 : predictedNs / 1e6 / policy.maxDutyRatio);
  if (!force && rssBytes === null) {
    return { allowed: false, reason: 'smaps_rollup not read: the RSS of the target is unknown, so the cost of the walk is too (pass force to read anyway).', predictedNs, intervalMs, retryInMs: null };
  }
  if (!force && rssBytes !== null && rssBytes > policy.maxRssBytes) {
    return {
      allowed: false,
      reason:
        `smaps_rollup not read: RSS ${size(rssBytes)} is above the ${size(policy.maxRssBytes)} limit; ` +
        `the page-table walk would take ~${ms(predictedNs as number)} and delay the target's mmap/munmap meanwhile (pass force to read anyway).`,
      predictedNs,
      intervalMs,
      retryInMs: null,
    };
  }
  if (msSinceLastRead !== null && msSinceLastRead < intervalMs) {
    const retryInMs = Math.ceil(intervalMs - msSinceLastRead);
    return {
      allowed: false,
      reason: `smaps_rollup not read: it was read ${seconds(msSinceLastRead)} ago and is allowed once per ${seconds(intervalMs)} for this target; next in ${seconds(retryInMs)}.`,
      predictedNs,
      intervalMs,
      retryInMs,
    };
  }
  return { allowed: true, reason: null, predictedNs, intervalMs, retryInMs: 0 };
}

/** Remembers when each pid's smaps_rollup was last read, and applies decideSmapsRead. */
export class SmapsGate {
  readonly policy: Readonly<SmapsGatePolicy>;
  private readonly lastReadMs = new Map<number, number>();

  constructor(policy: Partial<SmapsGatePolicy> = {}) {
    if (typeof policy !== 'object' || policy === null) {
      throw new AllocscopeError('EINVAL', `the smaps gate policy must be an object like { minIntervalMs: 10000 }; got ${describe(policy)}.`);
    }
    const merged = { ...DEFAULT_SMAPS_GATE_POLICY, ...policy };
    checkNumber('maxRssBytes', merged.maxRssBytes, 0, Number.MAX_SAFE_INTEGER);
    checkNumber('minIntervalMs', merged.minIntervalMs, 0, 86_400_000);
    checkNumber('maxDutyRatio', merged.maxDutyRatio, 1e-9, 1);
    this.policy = Object.freeze(merged);
  }

  /** The decision for `pid` now (monotonic ms, performance.now() unless given). */
  decide(pid: number, input: Omit<SmapsGateInput, 'msSinceLastRead'>, nowMs: number = performance.now()): SmapsGateDecision {
    const last = this.lastReadMs.get(pid);
    return decideSmapsRead({ ...input, msSinceLastRead: last === undefined ? null : nowMs - last }, this.policy);
  }

  /** Notes a read of `pid` at `nowMs`. */
  record(pid: number, nowMs: number = performance.now()): void {
    this.lastReadMs.set(pid, nowMs);
    // Forget pids whose interval is long over, so a long-lived monitor of many pids stays small.
    if (this.lastReadMs.size > 1024) {
      for (const [other, at] of this.lastReadMs) {
        if (nowMs - at > 10 * this.policy.minIntervalMs) this.lastReadMs.delete(other);
      }
    }
  }

  /** Forgets `pid` (it exited, or a caller wants the next read to happen). */
  forget(pid: number): void {
    this.lastReadMs.delete(pid);
  }
}

/** The gate readSmapsRollup uses unless given another: one per process, shared by all callers. */
export const sharedSmapsGate = new SmapsGate();

export interface SmapsRollupOptions extends ProcFileOptions {
  /** Default: sharedSmapsGate. */
  gate?: SmapsGate;
  /** Read even above the gate's RSS limit (the interval still applies). */
  force?: boolean;
  /** The target's RSS if the caller just read it; otherwise statm is read (~3 us). */
  rssBytes?: number;
  /** The target's VMA count if the caller knows it (from maps). */
  vmaCount?: number;
}

export interface SmapsRollupReading {
  /** `smaps_rollup.<Key>` in kB; null when the gate refused the read. */
  slots: Record<string, number> | null;
  decision: SmapsGateDecision;
  /** How long the read took, ns (0 when not read). */
  ns: number;
}

/**
 * Reads /proc/<pid>/smaps_rollup if the gate allows it. Throws ESRCH, EACCES (it needs the
 * target's uid or CAP_SYS_PTRACE) or EUNSUPPORTED (Linux < 4.14); a refusal is not an error.
 */
export function readSmapsRollup(pid: number, options: SmapsRollupOptions = {}): SmapsRollupReading {
  const gate = options.gate ?? sharedSmapsGate;
  const rssBytes = options.rssBytes ?? (readStatm(pid, options)['statm.resident'] ?? Number.NaN) * systemPageSize();
  const decision = gate.decide(pid, { rssBytes: Number.isFinite(rssBytes) ? rssBytes : null, vmaCount: options.vmaCount, force: options.force });
  if (!decision.allowed) return { slots: null, decision, ns: 0 };
  const start = process.hrtime.bigint();
  const text = readProcFile(pid, 'smaps_rollup', options);
  const ns = Number(process.hrtime.bigint() - start);
  gate.record(pid);
  return { slots: parseSmapsRollup(text), decision, ns };
}

function size(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

function ms(ns: number): string {
  return `${Math.round(ns / 1e6)} ms`;
}

function seconds(milliseconds: number): string {
  return `${(milliseconds / 1000).toFixed(1)} s`;
}
