/**
 * Reads what `allocscope report` draws: a compare run directory (compare/summary.ts is its
 * contract) or one `profile-pid --out` NDJSON file, defensively. A run killed mid-write leaves a
 * truncated last line (sample-writer.ts writes each sample with one write, so only the last line
 * can be cut): it is dropped and noted. Any other unreadable line, a missing input or a file that
 * is not allocscope's is an AllocscopeError with a sentence saying what to give instead.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { COMPARE_SUMMARY_FILE, COMPARE_SUMMARY_VERSION, type CompareRunStatus, type CompareSummary, type CompareVariantRun } from '../compare/summary';
import { AllocscopeError, describe } from '../errors';
import type { AllocatorName, Snapshot } from '../snapshot';
import { diagnose, type Verdict, type VerdictKind } from '../verdict';

/** What the x axis counts: requests completed (compare runs) or seconds since the first sample. */
export type ReportXAxis = 'requests' | 'seconds';

/** A run as the report shows it: one variant run of a compare, or the one process of a profile. */
export interface ReportRun {
  /** Shown on charts and in the table, e.g. "jemalloc" or "glibc #2" with --repeat. */
  label: string;
  allocator: AllocatorName | null;
  /** A compare run's status; 'profile' for a profile-pid file. */
  status: CompareRunStatus | 'profile';
  error: { code: string; message: string } | null;
  /** Oldest first, as written. */
  snapshots: Snapshot[];
  /** The x value of each snapshot (same length): requests completed, or seconds. */
  x: number[];
  /** What the reader had to leave out or could not find, one sentence each. */
  notes: string[];
  /** The compare summary's own row for this run; null for a profile file. */
  compareRun: CompareVariantRun | null;
  verdictKind: VerdictKind | null;
  verdictSummary: string | null;
  /** The whole verdict where the report computed it (profile files and runs compare left without one). */
  verdict: Verdict | null;
}

export interface ReportInput {
  kind: 'compare' | 'profile';
  /** The path given, resolved. */
  source: string;
  xAxis: ReportXAxis;
  /** The summary.json of a compare run directory; null for a profile file. */
  compare: CompareSummary | null;
  runs: ReportRun[];
}

/** Samples files larger than this are refused rather than read into memory (30 days at 1 Hz is ~4 GiB). */
export const MAX_SAMPLES_FILE_BYTES = 1024 * 1024 * 1024;

/** The verdict looks at the last hour at 1 Hz at most, the window profile-pid's own verdict keeps. */
export const VERDICT_WINDOW_SAMPLES = 3600;

const STATUSES: readonly CompareRunStatus[] = ['complete', 'failed', 'interrupted', 'skipped'];

function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw new AllocscopeError('EINVAL', message, details);
}

/** The snapshots of one NDJSON samples file, and whether its last line was cut off. */
export interface SamplesFile {
  snapshots: Snapshot[];
  /** The last line did not parse (a run killed mid-write): it was left out. */
  truncatedLastLine: boolean;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A line is a Snapshot when it has the fields every chart and the verdict read, with the right types. */
function asSnapshot(value: unknown): Snapshot | null {
  if (!isObject(value) || value.schema !== 1) return null;
  if (typeof value.monotonicNs !== 'number' || !Number.isFinite(value.monotonicNs)) return null;
  if (!isObject(value.allocator) || typeof value.allocator.name !== 'string') return null;
  if (!isObject(value.allocatorBytes) || !isObject(value.processBytes) || !isObject(value.ratios)) return null;
  return value as unknown as Snapshot;
}

/**
 * Reads a file of bare Snapshots, one per line (sample-writer.ts's NDJSON). Blank lines are
 * skipped; a last line that does not parse is dropped (`truncatedLastLine`); any other line that
 * is not a schema-1 Snapshot throws EINVAL naming it. A .csv file is refused: its columns drop the
 * figures the charts need.
 */
export function readSamplesFile(path: string): SamplesFile {
  if (path.endsWith('.csv')) {
    invalid(`${path} is CSV; the report reads NDJSON samples only (CSV keeps too few figures for its charts). Record again with --out run.ndjson.`, { path });
  }
  let size: number;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) invalid(`${path} is a directory, not a samples file; give an .ndjson file written by profile-pid --out or a compare run.`, { path });
    size = stat.size;
  } catch (error) {
    if (error instanceof AllocscopeError) throw error;
    return unreadable(path, error);
  }
  if (size > MAX_SAMPLES_FILE_BYTES) {
    invalid(`${path} is ${size} bytes, over the report's limit of ${MAX_SAMPLES_FILE_BYTES}; keep a part of it (e.g. tail -n 100000 ${path} > part.ndjson) and report that.`, { path, size });
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return unreadable(path, error);
  }
  const lines = text.split('\n');
  let last = lines.length - 1;
  while (last >= 0 && lines[last].trim() === '') last--;
  const snapshots: Snapshot[] = [];
  let truncatedLastLine = false;
  for (let i = 0; i <= last; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    const snapshot = asSnapshot(parsed);
    if (snapshot !== null) {
      snapshots.push(snapshot);
    } else if (i === last && parsed === undefined) {
      truncatedLastLine = true;
    } else {
      invalid(
        `line ${i + 1} of ${path} is not an allocscope snapshot (schema 1, one JSON object per line); ` +
          'give a file written by profile-pid --out, allocscope run --out or compare.',
        { path, line: i + 1 },
      );
    }
  }
  return { snapshots, truncatedLastLine };
}

function unreadable(path: string, error: unknown): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') invalid(`${path} does not exist; give a compare run directory or an .ndjson file written by profile-pid --out.`, { path, errno: code });
  throw new AllocscopeError(
    code === 'EACCES' || code === 'EPERM' ? 'EACCES' : 'EINVAL',
    `cannot read ${path}: ${(error as Error).message}. Check its permissions, or give another input.`,
    { path, errno: code },
  );
}

/** Seconds since the first sample, by the monotonic clock every source shares. */
function secondsAxis(snapshots: readonly Snapshot[]): number[] {
  const start = snapshots.length > 0 ? snapshots[0].monotonicNs : 0;
  return snapshots.map((s) => (s.monotonicNs - start) / 1e9);
}

/** diagnose() over the latest window, or null with the reason when the history cannot be judged. */
function verdictOf(snapshots: readonly Snapshot[]): { verdict: Verdict | null; problem: string | null } {
  if (snapshots.length === 0) return { verdict: null, problem: null };
  try {
    return { verdict: diagnose(snapshots.slice(-VERDICT_WINDOW_SAMPLES)), problem: null };
  } catch (error) {
    if (!(error instanceof AllocscopeError)) throw error;
    return { verdict: null, problem: `no verdict: ${error.message}` };
  }
}

/** A profile-pid (or `allocscope run`) --out file: one process, x = seconds. */
function loadProfileFile(path: string): ReportInput {
  const { snapshots, truncatedLastLine } = readSamplesFile(path);
  if (snapshots.length === 0) {
    invalid(`${path} holds no samples; profile for longer (profile-pid PID --samples 10 --out ${path}) or give another file.`, { path });
  }
  const lastSnapshot = snapshots[snapshots.length - 1];
  const notes = truncatedLastLine ? ['the last line was cut off (the profiler was killed mid-write) and is left out'] : [];
  const { verdict, problem } = verdictOf(snapshots);
  if (problem !== null) notes.push(problem);
  const pids = [...new Set(snapshots.map((s) => s.pid))];
  return {
    kind: 'profile',
    source: path,
    xAxis: 'seconds',
    compare: null,
    runs: [
      {
        label: `pid ${pids.join('+')} (${lastSnapshot.allocator.name})`,
        allocator: lastSnapshot.allocator.name,
        status: 'profile',
        error: null,
        snapshots,
        x: secondsAxis(snapshots),
        notes,
        compareRun: null,
        verdictKind: verdict?.kind ?? null,
        verdictSummary: verdict?.summary ?? null,
        verdict,
      },
    ],
  };
}

function checkSummary(value: unknown, path: string): CompareSummary {
  const fix = 'run allocscope compare again, or give its .ndjson files one at a time';
  if (!isObject(value)) invalid(`${path} is not a compare summary (a JSON object); ${fix}.`, { path });
  if (value.version !== COMPARE_SUMMARY_VERSION) {
    invalid(`${path} has summary version ${describe(value.version)}; this allocscope reads version ${COMPARE_SUMMARY_VERSION}. Use the allocscope that wrote it, or ${fix}.`, { path, version: value.version });
  }
  if (!Array.isArray(value.runs)) invalid(`${path} has no runs array; ${fix}.`, { path });
  value.runs.forEach((run: unknown, index: number) => {
    const where = `${path} runs[${index}]`;
    if (!isObject(run)) invalid(`${where} is not an object; ${fix}.`, { path, index });
    if (typeof run.label !== 'string') invalid(`${where}.label must be a string; ${fix}.`, { path, index });
    if (!STATUSES.includes(run.status as CompareRunStatus)) invalid(`${where}.status must be one of ${STATUSES.join(', ')}; got ${describe(run.status)}.`, { path, index });
    if (run.samplesFile !== null && typeof run.samplesFile !== 'string') invalid(`${where}.samplesFile must be a file name or null; ${fix}.`, { path, index });
    if (!Array.isArray(run.requestsAtSample) || run.requestsAtSample.some((n: unknown) => typeof n !== 'number' || !Number.isFinite(n))) {
      invalid(`${where}.requestsAtSample must be an array of request counts; ${fix}.`, { path, index });
    }
  });
  return value as unknown as CompareSummary;
}

/** One variant run of a compare directory: its samples matched to requestsAtSample. */
function loadCompareRun(dir: string, run: CompareVariantRun, repeated: boolean): ReportRun {
  const notes: string[] = [];
  let snapshots: Snapshot[] = [];
  if (run.samplesFile !== null) {
    const path = resolve(dir, run.samplesFile);
    const inside = relative(dir, path);
    if (inside.startsWith('..') || isAbsolute(inside)) {
      notes.push(`its samples file ${JSON.stringify(run.samplesFile)} lies outside the run directory and was not read`);
    } else {
      try {
        const file = readSamplesFile(path);
        snapshots = file.snapshots;
        if (file.truncatedLastLine) notes.push('the last line of its samples file was cut off (the run was killed mid-write) and is left out');
      } catch (error) {
        // A missing or unreadable file of one run must not hide the others; bad content still throws.
        if (!(error instanceof AllocscopeError) || (error.details as { errno?: string }).errno === undefined) throw error;
        notes.push(`its samples file could not be read: ${error.message}`);
      }
    }
  }
  // Samples and request counts are written one after the other: a stop between the two leaves one more of either.
  const paired = Math.min(snapshots.length, run.requestsAtSample.length);
  if (snapshots.length !== run.requestsAtSample.length && snapshots.length > 0) {
    notes.push(`${snapshots.length} samples but ${run.requestsAtSample.length} request counts: the first ${paired} are drawn`);
  }
  snapshots = snapshots.slice(0, paired);
  let verdict: Verdict | null = null;
  if (typeof run.verdict !== 'string') {
    const judged = verdictOf(snapshots);
    verdict = judged.verdict;
    if (judged.problem !== null) notes.push(judged.problem);
  }
  return {
    label: repeated ? `${run.label} #${(Number.isInteger(run.repeat) ? run.repeat : 0) + 1}` : run.label,
    allocator: run.allocator ?? null,
    status: run.status,
    error: run.error ?? null,
    snapshots,
    x: run.requestsAtSample.slice(0, paired),
    notes,
    compareRun: run,
    verdictKind: verdict?.kind ?? run.verdict ?? null,
    verdictSummary: verdict?.summary ?? run.verdictSummary ?? null,
    verdict,
  };
}

function loadCompareDir(dir: string): ReportInput {
  const summaryPath = join(dir, COMPARE_SUMMARY_FILE);
  let text: string;
  try {
    text = readFileSync(summaryPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      invalid(`${dir} is not a compare run directory (no ${COMPARE_SUMMARY_FILE}); give the --out directory of allocscope compare, or one .ndjson samples file.`, { path: dir });
    }
    return unreadable(summaryPath, error);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    invalid(`${summaryPath} is not valid JSON (${(error as Error).message}); run allocscope compare again, or give its .ndjson files one at a time.`, { path: summaryPath });
  }
  const summary = checkSummary(parsed, summaryPath);
  const repeated = summary.runs.some((run) => run.repeat > 0);
  return {
    kind: 'compare',
    source: dir,
    xAxis: 'requests',
    compare: summary,
    runs: summary.runs.map((run) => loadCompareRun(dir, run, repeated)),
  };
}

/** Loads a compare run directory or one NDJSON samples file, whichever `path` is. */
export function loadReportInput(path: string): ReportInput {
  if (typeof path !== 'string' || path === '') invalid('give a compare run directory or an .ndjson samples file to report on.');
  const resolved = resolve(path);
  let directory: boolean;
  try {
    directory = statSync(resolved).isDirectory();
  } catch (error) {
    return unreadable(resolved, error);
  }
  return directory ? loadCompareDir(resolved) : loadProfileFile(resolved);
}
