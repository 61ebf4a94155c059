/**
 * Which charts and series a report has, from real samples (the C workload profiled with the agent
 * under glibc, and jemalloc where installed): one series per run on the cross-run charts, only the
 * figures a source can tell on each run's own charts, long runs thinned, x values aligned.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocatorInstalled } from '../../lib/allocators/libraries';
import { alignColumns, chartsFor, MAX_CHART_POINTS, thinIndices } from '../../lib/report/chart-data';
import type { ReportInput, ReportRun } from '../../lib/report/run-loader';
import type { Snapshot } from '../../lib/snapshot';
import { profileWorkload, STEP } from '../helpers/report-runs';

const dir = mkdtempSync(join(tmpdir(), 'allocscope-report-charts-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const withJemalloc = allocatorInstalled('jemalloc') || process.env.CI !== undefined;
let glibc: Snapshot[] = [];
let jemalloc: Snapshot[] = [];
t.before(async () => {
  [glibc, jemalloc] = await Promise.all([
    profileWorkload('glibc', join(dir, 'glibc.ndjson'), 8, 60),
    withJemalloc ? profileWorkload('jemalloc', join(dir, 'jemalloc.ndjson'), 6, 60) : Promise.resolve([]),
  ]);
});

function run(label: string, snapshots: Snapshot[], x: number[], status: ReportRun['status'] = 'complete'): ReportRun {
  return { label, allocator: snapshots[0]?.allocator.name ?? null, status, error: null, snapshots, x, notes: [], compareRun: null, verdictKind: null, verdictSummary: null, verdict: null };
}

const requests = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => (i + 1) * STEP + offset);

t.test('thinIndices keeps every sample up to the limit, then every k-th and the last', async (t) => {
  t.same(thinIndices(0), []);
  t.same(thinIndices(3), [0, 1, 2]);
  t.equal(thinIndices(MAX_CHART_POINTS).length, MAX_CHART_POINTS);
  t.same(thinIndices(10, 4), [0, 3, 6, 9]);
  t.same(thinIndices(11, 4), [0, 3, 6, 9, 10], 'the last sample is always drawn');
  const thinned = thinIndices(10_001);
  t.ok(thinned.length <= MAX_CHART_POINTS + 1);
  t.equal(thinned[thinned.length - 1], 10_000);
});

t.test('alignColumns: the union of x values, null where a column has no point', async (t) => {
  t.same(
    alignColumns([
      { x: [1000, 2000, 3000], values: [1, 2, 3] },
      { x: [1500, 3000], values: [10, 30] },
    ]),
    { x: [1000, 1500, 2000, 3000], values: [[1, null, 2, 3], [null, 10, null, 30]] },
  );
  t.same(alignColumns([{ x: [5, 5], values: [1, 2] }]), { x: [5], values: [[2]] }, 'a repeated x keeps the last value');
  t.same(alignColumns([]), { x: [], values: [] });
});

t.test('a compare: cross-run charts with one series per run that has samples', async (t) => {
  const runs = [run('glibc', glibc, requests(glibc.length)), run('tcmalloc', [], [], 'failed')];
  if (withJemalloc) runs.push(run('jemalloc', jemalloc, requests(jemalloc.length, 500)));
  const charts = chartsFor({ kind: 'compare', source: dir, xAxis: 'requests', compare: null, runs });
  const byId = new Map(charts.map((chart) => [chart.id, chart]));
  const labels = withJemalloc ? ['glibc', 'jemalloc'] : ['glibc'];
  const rss = byId.get('rss');
  t.match(rss, { title: 'RSS vs requests', unit: 'bytes', fill: false, xAxis: 'requests' });
  t.same(rss?.series.map((s) => s.label), labels, 'the failed run without samples is left out');
  t.same(rss?.series[0].values.filter((v) => v !== null), glibc.map((s) => s.processBytes.rss), "glibc's RSS, sample by sample");
  if (withJemalloc) {
    t.equal(rss?.x.length, glibc.length + jemalloc.length, 'offset request counts: the union of both x arrays');
    t.same(rss?.series[1].values.filter((v) => v !== null), jemalloc.map((s) => s.processBytes.rss));
    t.not(rss?.series[0].color, rss?.series[1].color, 'each run its own colour');
  }
  t.same(byId.get('live')?.series.map((s) => s.label), labels);
  t.same(
    charts.map((chart) => chart.id),
    ['rss', 'live', 'layers-0', 'ratios-0', 'internals-0', ...(withJemalloc ? ['layers-2', 'ratios-2', 'internals-2'] : [])],
    'no per-run charts for a run without samples',
  );
  const layers = byId.get('layers-0');
  t.match(layers, { fill: true, unit: 'bytes', title: 'glibc: allocated, active, resident, RSS' });
  t.same(layers?.series.map((s) => s.label), ['RSS', 'allocated (live bytes)'], 'glibc cannot tell active or resident: no such series');
  t.same(layers?.series[1].values, glibc.map((s) => s.allocatorBytes.allocated));
  t.same(byId.get('ratios-0')?.series[0].values, glibc.map((s) => s.ratios.totalOverhead?.ratio ?? null));
  t.equal(byId.get('ratios-0')?.unit, 'ratio');
  const internals = byId.get('internals-0');
  t.equal(internals?.title, 'glibc: glibc arenas: free and mapped bytes');
  t.same(internals?.series.find((s) => s.label === 'free in heap')?.values, glibc.map((s) => s.allocatorBytes.heapFree));
  t.same(internals?.series.find((s) => s.label === 'mmapped chunks (hblkhd)')?.values, glibc.map((s) => s.raw.mallinfo2.hblkhd));
  if (withJemalloc) {
    t.same(byId.get('layers-2')?.series.map((s) => s.label), ['RSS', 'resident (allocator)', 'active (allocator)', 'allocated (live bytes)']);
    t.match(byId.get('internals-2')?.title, /jemalloc pages/);
    t.same(byId.get('internals-2')?.series.find((s) => s.label === 'dirty pages')?.values, jemalloc.map((s) => s.allocatorBytes.dirty));
  }
});

t.test('glibc arenas from /proc maps and jemalloc bins, where the snapshots carry them', async (t) => {
  // A procfs-level snapshot carries maps.* figures; an addon 'full' one under jemalloc carries smallBinFrag.
  const withMaps = glibc.map((s, i) => ({ ...s, raw: { ...s.raw, maps: { glibcArenaHeapBytes: (i + 1) * 65536 } }, ratios: { ...s.ratios, smallBinFrag: { ratio: 1.1, bytes: 100 } } }));
  const charts = chartsFor({ kind: 'profile', source: dir, xAxis: 'seconds', compare: null, runs: [run('p', withMaps, withMaps.map((_, i) => i))] });
  t.same(charts.find((c) => c.id === 'internals-0')?.series.find((s) => s.label === 'arena heaps (maps)')?.values, withMaps.map((_, i) => (i + 1) * 65536));
  t.same(charts.find((c) => c.id === 'ratios-0')?.series.find((s) => s.label === 'small-bin frag (jemalloc bins)')?.values, withMaps.map(() => 1.1));
  t.equal(charts[0].title, 'RSS vs time');
});

t.test('an allocator with none of the figures: no per-run chart but the RSS one; unknown figures are null', async (t) => {
  const bare = glibc.map((s) => ({
    ...s,
    allocator: { ...s.allocator, name: 'unknown' as const },
    allocatorBytes: { ...s.allocatorBytes, allocated: null, mapped: null, heapFree: null, releasable: null },
    processBytes: { ...s.processBytes, rss: Number.NaN },
    ratios: { externalFrag: null, allocatorRetention: null, nonAllocatorRss: null, totalOverhead: null, smallBinFrag: null, arenaFree: null },
    raw: {},
  }));
  bare[0] = { ...bare[0], processBytes: { ...bare[0].processBytes, rss: 4096 } };
  const charts = chartsFor({ kind: 'profile', source: dir, xAxis: 'seconds', compare: null, runs: [run('p', bare, bare.map((_, i) => i))] });
  t.same(charts.map((c) => c.id), ['rss', 'layers-0']);
  t.same(charts[0].series[0].values, [4096, ...bare.slice(1).map(() => null)], 'NaN is not a byte count: null');
  t.equal(chartsFor({ kind: 'compare', source: dir, xAxis: 'requests', compare: null, runs: [run('x', [], [], 'skipped')] }).length, 0);
});

t.test('a long run is thinned for drawing', async (t) => {
  const count = MAX_CHART_POINTS * 2 + 1;
  const long = Array.from({ length: count }, (_, i) => glibc[i % glibc.length]);
  const charts = chartsFor({ kind: 'profile', source: dir, xAxis: 'seconds', compare: null, runs: [run('long', long, long.map((_, i) => i))] } satisfies ReportInput);
  for (const chart of charts) {
    t.ok(chart.x.length <= MAX_CHART_POINTS + 1, `${chart.id}: ${chart.x.length} points`);
    t.equal(chart.x[chart.x.length - 1], count - 1, `${chart.id} ends at the last sample`);
  }
});
