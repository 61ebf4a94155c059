/**
 * The charts of a report as plain data: which series each chart has, their values against one
 * shared x array (uPlot's aligned-data shape), colours and units. Built here, in Node, so what a
 * chart shows is decided and tested in one place; the page only hands it to the charting library.
 */
import type { Snapshot, SnapshotRatios } from '../snapshot';
import type { ReportInput, ReportRun, ReportXAxis } from './run-loader';

export type ChartUnit = 'bytes' | 'ratio';

export interface ChartSeries {
  label: string;
  /** One value per x; null where this series has no sample at that x (or the source cannot tell). */
  values: (number | null)[];
  /** CSS colour, #rrggbb. */
  color: string;
}

export interface ChartSpec {
  /** Unique in the page; the placeholder element carries it as data-chart. */
  id: string;
  title: string;
  xAxis: ReportXAxis;
  unit: ChartUnit;
  /** Draw filled areas (layered memory figures) rather than lines only. */
  fill: boolean;
  x: number[];
  series: ChartSeries[];
}

/** At most this many points per series are drawn; longer runs keep every k-th sample and the last. */
export const MAX_CHART_POINTS = 2000;

/** One colour per run on the cross-run charts (Okabe-Ito, readable with colour blindness), then repeats. */
const RUN_COLORS = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#d55e00', '#56b4e9', '#000000', '#f0e442'];

/** The layers, outermost first: each contains the next (rss ⊇ resident ⊇ active ⊇ allocated). */
const LAYERS: ReadonlyArray<{ label: string; color: string; value: (s: Snapshot) => unknown }> = [
  { label: 'RSS', color: '#d55e00', value: (s) => s.processBytes.rss },
  { label: 'resident (allocator)', color: '#e69f00', value: (s) => s.allocatorBytes.resident },
  { label: 'active (allocator)', color: '#56b4e9', value: (s) => s.allocatorBytes.active },
  { label: 'allocated (live bytes)', color: '#0072b2', value: (s) => s.allocatorBytes.allocated },
];

const RATIOS: ReadonlyArray<{ name: keyof SnapshotRatios; label: string; color: string }> = [
  { name: 'totalOverhead', label: 'rss/allocated', color: '#d55e00' },
  { name: 'externalFrag', label: 'active/allocated', color: '#0072b2' },
  { name: 'allocatorRetention', label: 'resident/active', color: '#e69f00' },
  { name: 'nonAllocatorRss', label: 'rss/resident', color: '#009e73' },
  { name: 'smallBinFrag', label: 'small-bin frag (jemalloc bins)', color: '#cc79a7' },
  { name: 'arenaFree', label: 'mapped/allocated (glibc arenas)', color: '#56b4e9' },
];

/** The allocator's own books beyond the layers: what it holds that the application does not use. */
const INTERNALS: ReadonlyArray<{ label: string; color: string; value: (s: Snapshot) => unknown }> = [
  { label: 'mapped', color: '#999999', value: (s) => s.allocatorBytes.mapped },
  { label: 'retained (unmapped, kept)', color: '#000000', value: (s) => s.allocatorBytes.retained },
  { label: 'free in heap', color: '#d55e00', value: (s) => s.allocatorBytes.heapFree },
  { label: 'dirty pages', color: '#e69f00', value: (s) => s.allocatorBytes.dirty },
  { label: 'muzzy pages', color: '#f0e442', value: (s) => s.allocatorBytes.muzzy },
  { label: 'thread caches', color: '#009e73', value: (s) => s.allocatorBytes.threadCache },
  { label: 'metadata', color: '#cc79a7', value: (s) => s.allocatorBytes.metadata },
  { label: 'trimmable top (keepcost)', color: '#56b4e9', value: (s) => s.allocatorBytes.releasable },
  // glibc's raw figures: mmapped chunks (mallinfo2), and the 64 MiB arena heaps /proc/PID/maps shows.
  { label: 'mmapped chunks (hblkhd)', color: '#0072b2', value: (s) => s.raw?.mallinfo2?.hblkhd },
  { label: 'arena heaps (maps)', color: '#8c564b', value: (s) => s.raw?.maps?.glibcArenaHeapBytes },
];

/** The charting title of the internals chart: what the allocator's own books are called. */
const INTERNALS_TITLE: Record<string, string> = {
  glibc: 'glibc arenas: free and mapped bytes',
  jemalloc: 'jemalloc pages: dirty, muzzy, retained, caches',
  tcmalloc: 'tcmalloc page heap and caches',
};

function byteValue(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Indices of the samples drawn: all of them, or every k-th plus the last when there are too many. */
export function thinIndices(length: number, max: number = MAX_CHART_POINTS): number[] {
  if (length <= max) return Array.from({ length }, (_, i) => i);
  const stride = Math.ceil(length / max);
  const kept: number[] = [];
  for (let i = 0; i < length; i += stride) kept.push(i);
  if (kept[kept.length - 1] !== length - 1) kept.push(length - 1);
  return kept;
}

interface Column {
  x: number[];
  values: (number | null)[];
}

/**
 * Several (x, y) columns on one x array: the union of their x values, ascending, each column
 * null where it has no point (uPlot draws across the gaps with spanGaps). Repeated x values within
 * one column keep the last.
 */
export function alignColumns(columns: readonly Column[]): { x: number[]; values: (number | null)[][] } {
  const x = [...new Set(columns.flatMap((c) => c.x))].sort((a, b) => a - b);
  const position = new Map(x.map((value, index) => [value, index]));
  const values = columns.map((column) => {
    const row: (number | null)[] = new Array(x.length).fill(null);
    column.x.forEach((value, i) => {
      row[position.get(value) as number] = column.values[i];
    });
    return row;
  });
  return { x, values };
}

function runColumn(run: ReportRun, value: (s: Snapshot) => unknown): Column {
  const kept = thinIndices(run.snapshots.length);
  return { x: kept.map((i) => run.x[i]), values: kept.map((i) => byteValue(value(run.snapshots[i]))) };
}

function hasAny(column: Column): boolean {
  return column.values.some((v) => v !== null);
}

/** One chart with a series per run (the seed's graph when `value` is RSS). */
function acrossRuns(input: ReportInput, id: string, title: string, value: (s: Snapshot) => unknown): ChartSpec | null {
  const drawn = input.runs
    .map((run, index) => ({ run, color: RUN_COLORS[index % RUN_COLORS.length], column: runColumn(run, value) }))
    .filter((entry) => hasAny(entry.column));
  if (drawn.length === 0) return null;
  const aligned = alignColumns(drawn.map((d) => d.column));
  return {
    id,
    title,
    xAxis: input.xAxis,
    unit: 'bytes',
    fill: false,
    x: aligned.x,
    series: drawn.map((d, i) => ({ label: d.run.label, color: d.color, values: aligned.values[i] })),
  };
}

/** One chart of one run, a series per figure that has at least one value. */
function perRun(
  input: ReportInput,
  run: ReportRun,
  id: string,
  title: string,
  unit: ChartUnit,
  fill: boolean,
  figures: ReadonlyArray<{ label: string; color: string; value: (s: Snapshot) => unknown }>,
): ChartSpec | null {
  const kept = thinIndices(run.snapshots.length);
  const series = figures
    .map((figure) => ({ label: figure.label, color: figure.color, values: kept.map((i) => byteValue(figure.value(run.snapshots[i]))) }))
    .filter((s) => s.values.some((v) => v !== null));
  if (series.length === 0) return null;
  return { id, title, xAxis: input.xAxis, unit, fill, x: kept.map((i) => run.x[i]), series };
}

/** Every chart of the report, in page order: the cross-run charts, then each run's own. */
export function chartsFor(input: ReportInput): ChartSpec[] {
  const against = input.xAxis === 'requests' ? 'requests' : 'time';
  const charts: (ChartSpec | null)[] = [
    acrossRuns(input, 'rss', `RSS vs ${against}`, (s) => s.processBytes.rss),
    acrossRuns(input, 'live', `live bytes (allocated) vs ${against}`, (s) => s.allocatorBytes.allocated),
  ];
  input.runs.forEach((run, index) => {
    charts.push(perRun(input, run, `layers-${index}`, `${run.label}: allocated, active, resident, RSS`, 'bytes', true, LAYERS));
    charts.push(
      perRun(input, run, `ratios-${index}`, `${run.label}: ratios`, 'ratio', false, RATIOS.map((r) => ({ label: r.label, color: r.color, value: (s: Snapshot) => s.ratios[r.name]?.ratio }))),
    );
    charts.push(
      perRun(
        input,
        run,
        `internals-${index}`,
        `${run.label}: ${INTERNALS_TITLE[run.allocator ?? ''] ?? 'allocator internals'}`,
        'bytes',
        false,
        INTERNALS,
      ),
    );
  });
  return charts.filter((chart): chart is ChartSpec => chart !== null);
}
