/**
 * Real inputs for the report tests: the C workload fixture profiled with the agent preloaded under
 * glibc and jemalloc (profilePid writes the NDJSON, as `profile-pid --out` does), and a compare run
 * directory around those files written to the compare/summary.ts contract. It stands in for
 * `allocscope compare` until that lands; "requests" are the workload's steps, 1000 per sample.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allocatorInstalled } from '../../lib/allocators/libraries';
import { profilePid } from '../../lib/cli/profile-pid';
import { COMPARE_SUMMARY_FILE, COMPARE_SUMMARY_VERSION, type CompareSummary, type CompareVariantRun } from '../../lib/compare/summary';
import type { AllocatorName, Snapshot } from '../../lib/snapshot';
import { theilSen } from '../../lib/stats/theil-sen';
import { agentSocketExists } from '../../lib/targets/agent';
import { diagnose } from '../../lib/verdict';
import { startWorkload, waitFor } from './workload';

/** Requests "completed" between two samples of the stand-in runs. */
export const STEP = 1000;

const quietIo = { out: () => {}, err: () => {}, tty: false };

/**
 * Runs `heap_workload fragment 2` (two threads churning random sizes with a bounded cache: RSS
 * above live bytes under glibc) with the agent preloaded and profiles it: `samples` snapshots
 * `intervalMs` apart, written to `out` by profilePid. Returns the file's snapshots.
 */
export async function profileWorkload(allocator: AllocatorName, out: string, samples = 12, intervalMs = 100, env: Record<string, string> = {}): Promise<Snapshot[]> {
  const workload = await startWorkload(['fragment', '2', '20', '0'], { allocator, env });
  try {
    if (!(await waitFor(() => agentSocketExists(workload.pid), 3000))) throw new Error(`the agent of pid ${workload.pid} did not start`);
    await profilePid({ pid: workload.pid, intervalMs, durationMs: null, samples, out, json: false, children: false, quiet: true }, quietIo);
  } finally {
    workload.stop();
  }
  return readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Snapshot);
}

/** The summary row compare would write for a run with these samples. */
export function variantRun(label: string, allocator: AllocatorName, samplesFile: string | null, snapshots: readonly Snapshot[], status: CompareVariantRun['status'] = 'complete'): CompareVariantRun {
  const requestsAtSample = snapshots.map((_, i) => (i + 1) * STEP);
  const first = snapshots[0];
  const last = snapshots[snapshots.length - 1];
  const rssPoints = snapshots.flatMap((s, i) => (s.processBytes.rss === null ? [] : [{ x: requestsAtSample[i], y: s.processBytes.rss }]));
  const verdict = snapshots.length > 0 ? diagnose(snapshots) : null;
  return {
    label,
    allocator,
    env: label.includes(':') ? Object.fromEntries([label.split(':')[1].split('=')]) : {},
    repeat: 0,
    status,
    samplesFile,
    requestsAtSample,
    requestsCompleted: snapshots.length * STEP,
    requestsFailed: 0,
    requestsPerSecond: snapshots.length > 0 ? 9000 : null,
    loadMs: snapshots.length * 100,
    rssStartBytes: first?.processBytes.rss ?? null,
    rssEndBytes: last?.processBytes.rss ?? null,
    rssGrowthPer10kRequests: rssPoints.length >= 2 ? (theilSen(rssPoints)?.slope ?? 0) * 10_000 : null,
    liveBytesEnd: last?.allocatorBytes.allocated ?? null,
    totalOverheadEnd: last?.ratios.totalOverhead?.ratio ?? null,
    externalFragEnd: last?.ratios.externalFrag?.ratio ?? null,
    verdict: verdict?.kind ?? null,
    verdictSummary: verdict?.summary ?? null,
  };
}

export interface CompareRunDir {
  dir: string;
  summary: CompareSummary;
  /** The real samples per label. */
  samples: Record<string, Snapshot[]>;
}

/**
 * A run directory with what a compare run can leave: glibc and jemalloc complete (real samples),
 * glibc:MALLOC_ARENA_MAX=2 interrupted (real samples, its file cut mid-line as a kill leaves it),
 * tcmalloc failed before any sample, mimalloc skipped. jemalloc runs only where installed.
 */
export async function makeCompareRunDir(dir: string): Promise<CompareRunDir> {
  mkdirSync(dir, { recursive: true });
  // In CI jemalloc must be there (helpers/child.ts): without it the run fails rather than shrinks.
  const withJemalloc = allocatorInstalled('jemalloc') || process.env.CI !== undefined;
  const [glibc, jemalloc, arena2] = await Promise.all([
    profileWorkload('glibc', join(dir, 'glibc.ndjson')),
    withJemalloc ? profileWorkload('jemalloc', join(dir, 'jemalloc.ndjson')) : Promise.resolve([] as Snapshot[]),
    profileWorkload('glibc', join(dir, 'glibc-arena2.ndjson'), 8, 100, { MALLOC_ARENA_MAX: '2' }),
  ]);
  // The interrupted run: its first 6 samples, then half a line, as a kill mid-write leaves it.
  const interrupted = arena2.slice(0, 6);
  const cut = JSON.stringify(arena2[6]);
  writeFileSync(join(dir, 'glibc-arena2.ndjson'), `${interrupted.map((s) => JSON.stringify(s)).join('\n')}\n${cut.slice(0, cut.length / 2)}`);
  const runs: CompareVariantRun[] = [variantRun('glibc', 'glibc', 'glibc.ndjson', glibc)];
  if (withJemalloc) runs.push(variantRun('jemalloc', 'jemalloc', 'jemalloc.ndjson', jemalloc));
  runs.push(
    { ...variantRun('glibc:MALLOC_ARENA_MAX=2', 'glibc', 'glibc-arena2.ndjson', interrupted, 'interrupted'), verdict: null, verdictSummary: null },
    { ...variantRun('tcmalloc', 'tcmalloc', null, [], 'failed'), error: { code: 'ESERVER', message: 'the server exited with code 1 before its port opened' } },
    { ...variantRun('mimalloc', 'mimalloc', null, [], 'skipped'), error: { code: 'ENOALLOCATOR', message: 'mimalloc is not installed; apt-get install libmimalloc2.0' } },
  );
  const ranking = runs
    .filter((run) => run.status === 'complete')
    .sort((a, b) => (a.rssGrowthPer10kRequests ?? Infinity) - (b.rssGrowthPer10kRequests ?? Infinity))
    .map((run) => run.label);
  const summary: CompareSummary = {
    version: COMPARE_SUMMARY_VERSION,
    command: ['build/Release/heap_workload', 'fragment', '2', '20', '0'],
    startedAt: new Date(glibc[0].time).toISOString(),
    finishedAt: null,
    requestsPlanned: 20 * STEP,
    step: STEP,
    concurrency: 2,
    load: 'builtin',
    repeatCount: 1,
    runs,
    ranking,
  };
  writeFileSync(join(dir, COMPARE_SUMMARY_FILE), `${JSON.stringify(summary, null, 2)}\n`);
  return { dir, summary, samples: { glibc, jemalloc, 'glibc:MALLOC_ARENA_MAX=2': interrupted } };
}
