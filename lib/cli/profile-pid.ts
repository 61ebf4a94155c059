/**
 * `profile-pid PID`: polls a process at the deepest level it can reach (its agent socket, else
 * /proc), shows a live view, streams every sample to --out as it is taken, and ends with a
 * summary and verdict on Ctrl-C, at --duration/--samples, or when the target exits.
 */
import { AllocscopeError } from '../errors';
import { formatBytes, formatRatio } from '../report/format';
import { SampleWriter } from '../report/sample-writer';
import { sparkline } from '../report/sparkline';
import type { Snapshot } from '../snapshot';
import { openTarget, type TargetSource } from '../targets/pick';
import { diagnose, type Verdict } from '../verdict';
import { numberFlag, parseArgs, UsageError } from './args';
import { parseDuration } from './duration';

export interface ProfileOptions {
  pid: number;
  intervalMs: number;
  durationMs: number | null;
  samples: number | null;
  out: string | null;
  json: boolean;
  children: boolean;
  quiet: boolean;
}

export type EndReason = 'samples' | 'duration' | 'signal' | 'target-exited' | 'write-failed';

export interface ProfileResult {
  pid: number;
  level: Snapshot['level'];
  levelNote: string | null;
  samples: number;
  endedBy: EndReason;
  out: string | null;
  first: Snapshot | null;
  last: Snapshot | null;
  verdict: Verdict;
  /** Why --out could not be written (endedBy 'write-failed'), else null. */
  writeError: string | null;
}

/** At most this many samples are kept for the verdict (1 h at 1 Hz); the file keeps them all. */
const HISTORY_LIMIT = 3600;

export function parseProfileArgs(argv: readonly string[]): ProfileOptions {
  const { flags, positional } = parseArgs(argv, {
    interval: 'string',
    duration: 'string',
    samples: 'string',
    out: 'string',
    json: 'boolean',
    children: 'boolean',
    quiet: 'boolean',
  });
  if (positional.length !== 1 || !/^[1-9]\d*$/.test(positional[0])) {
    throw new UsageError(`profile-pid takes one PID (a positive whole number); got ${positional.length === 0 ? 'none' : positional.join(' ')}`);
  }
  if (flags.duration !== undefined && flags.samples !== undefined) throw new UsageError('give --duration or --samples, not both');
  return {
    pid: Number(positional[0]),
    intervalMs: flags.interval === undefined ? 1000 : parseDuration('interval', String(flags.interval), 10, 3_600_000),
    durationMs: flags.duration === undefined ? null : parseDuration('duration', String(flags.duration), 10, 30 * 24 * 3_600_000),
    samples: flags.samples === undefined ? null : numberFlag(flags, 'samples', 0, 1, 10_000_000),
    out: flags.out === undefined ? null : String(flags.out),
    json: flags.json === true,
    children: flags.children === true,
    quiet: flags.quiet === true,
  };
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** True when `out` is a terminal that can redraw the live view in place. */
  tty: boolean;
}

function liveView(source: TargetSource, history: readonly Snapshot[]): string[] {
  const s = history[history.length - 1];
  const rss = history.map((h) => h.processBytes.rss);
  const live = history.map((h) => h.allocatorBytes.allocated);
  return [
    `pid ${s.pid}  level ${s.level}  malloc ${s.allocator.name}  samples ${history.length}`,
    `RSS        ${formatBytes(s.processBytes.rss).padStart(10)}  ${sparkline(rss)}`,
    `live bytes ${formatBytes(s.allocatorBytes.allocated).padStart(10)}  ${sparkline(live)}`,
    `rss/allocated ${formatRatio(s.ratios.totalOverhead)}   active/allocated ${formatRatio(s.ratios.externalFrag)}`,
    source.note !== null ? `(${source.note})` : '',
  ];
}

export function summaryText(result: ProfileResult): string {
  const { first, last } = result;
  const ended: Record<EndReason, string> = {
    samples: 'the requested number of samples was taken',
    duration: 'the duration ran out',
    signal: 'interrupted',
    'target-exited': `the target exited; ${result.out ?? 'the history'} holds every sample taken`,
    'write-failed': `writing ${result.out ?? '--out'} failed; it holds whole lines only, and the figures below are of every sample taken`,
  };
  const lines = [
    `profile of pid ${result.pid}: ${result.samples} samples at level ${result.level}; ended because ${ended[result.endedBy]}.`,
  ];
  if (result.levelNote !== null) lines.push(`level: ${result.levelNote}`);
  if (first !== null && last !== null) {
    lines.push(
      `RSS ${formatBytes(first.processBytes.rss)} -> ${formatBytes(last.processBytes.rss)}; ` +
        `live bytes ${formatBytes(first.allocatorBytes.allocated)} -> ${formatBytes(last.allocatorBytes.allocated)}.`,
    );
  }
  lines.push(`verdict: ${result.verdict.kind}: ${result.verdict.summary}`);
  for (const evidence of result.verdict.evidence) lines.push(`  evidence: ${evidence.sentence}`);
  for (const remedy of result.verdict.remedies) {
    lines.push(`  remedy ${remedy.rank} (${remedy.cost}): ${remedy.sentence}`);
    for (const command of remedy.commands) lines.push(`      ${command}`);
  }
  for (const unknown of result.verdict.unknowns) lines.push(`  unknown: ${unknown}`);
  if (result.out !== null) lines.push(`samples written to ${result.out}`);
  return lines.join('\n');
}

export async function profilePid(options: ProfileOptions, io: Io, stop: { requested: boolean } = { requested: false }): Promise<ProfileResult> {
  const source = await openTarget(options.pid, { children: options.children });
  let writer: SampleWriter | null = null;
  const history: Snapshot[] = [];
  let first: Snapshot | null = null;
  let endedBy: EndReason = 'signal';
  let drawn = 0;
  let taken = 0;
  let writeError: string | null = null;
  const started = Date.now();
  try {
    if (options.out !== null) writer = new SampleWriter(options.out);
    for (let tick = 0; ; tick++) {
      if (stop.requested) break;
      let snapshot: Snapshot;
      try {
        snapshot = await source.read();
      } catch (error) {
        if (error instanceof AllocscopeError && error.code === 'ESRCH') {
          endedBy = 'target-exited';
          break;
        }
        throw error;
      }
      first ??= snapshot;
      taken++;
      history.push(snapshot);
      if (history.length > HISTORY_LIMIT) history.shift();
      try {
        writer?.write(snapshot);
      } catch (error) {
        // A full disk ends the run, but not the summary: the samples in memory still make one.
        if (!(error instanceof AllocscopeError && error.code === 'EIO')) throw error;
        writeError = error.message;
        endedBy = 'write-failed';
        break;
      }
      if (!options.quiet && !options.json) {
        if (io.tty) {
          const lines = liveView(source, history);
          io.out(`${drawn > 0 ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}`).join('\n')}`);
          drawn = lines.length;
        } else {
          io.out(`${new Date(snapshot.time).toISOString()} rss=${snapshot.processBytes.rss} allocated=${snapshot.allocatorBytes.allocated ?? '-'} level=${snapshot.level}`);
        }
      }
      if (options.samples !== null && taken >= options.samples) {
        endedBy = 'samples';
        break;
      }
      const next = started + (tick + 1) * options.intervalMs;
      if (options.durationMs !== null && next - started > options.durationMs) {
        endedBy = 'duration';
        break;
      }
      // Sleep to the next tick (not a fixed delay: no drift), waking early on a stop request.
      await waitUntil(next, stop);
    }
  } finally {
    writer?.close();
    // The procfs sources hold /proc files open: a long-lived caller (a program calling profilePid
    // again and again) would run out of descriptors otherwise.
    source.close();
  }
  const last = history.length > 0 ? history[history.length - 1] : null;
  return {
    pid: options.pid,
    level: (last ?? first)?.level ?? source.level,
    levelNote: (last ?? first)?.levelNote ?? source.note,
    samples: taken,
    endedBy,
    out: options.out,
    first,
    last,
    verdict: diagnose(history),
    writeError,
  };
}

function waitUntil(time: number, stop: { requested: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (stop.requested || Date.now() >= time) return resolve();
      setTimeout(check, Math.min(100, Math.max(1, time - Date.now())));
    };
    check();
  });
}

/** Exit codes: 0 done (incl. the target exiting), 1 --out could not be written (summary still printed), 2 bad flag, 3 no such pid, 4 permission denied, 1 other. */
export async function profilePidCommand(argv: readonly string[], out: (t: string) => void, err: (t: string) => void): Promise<number> {
  const options = parseProfileArgs(argv);
  const stop = { requested: false };
  const onSignal = () => {
    stop.requested = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await profilePid(options, { out, err, tty: process.stdout.isTTY === true && !options.json }, stop);
    out(options.json ? JSON.stringify(result, null, 2) : `\n${summaryText(result)}`);
    if (result.writeError !== null) {
      err(`profile-pid: ${result.writeError} [EIO]`);
      return 1;
    }
    return 0;
  } catch (error) {
    if (error instanceof AllocscopeError && error.code === 'ESRCH') {
      err(`profile-pid: ${error.message}`);
      return 3;
    }
    if (error instanceof AllocscopeError && error.code === 'EACCES') {
      err(`profile-pid: ${error.message}`);
      return 4;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
