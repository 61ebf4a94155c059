/**
 * compare's terminal output: the summary table (one row per variant: medians over its complete
 * runs, with the spread when repeated) and a chart of RSS against requests, one line per variant
 * (asciichart), each line labelled at its end so it reads without colours too.
 */
import * as asciichart from 'asciichart';
import { formatBytes, formatTable } from '../report/format';
import type { CompareSummary, CompareVariantAggregate, CompareVariantRun } from './summary';

const MiB = 1024 * 1024;

function signedBytes(bytes: number | null): string {
  if (bytes === null) return '-';
  return `${bytes >= 0 ? '+' : ''}${formatBytes(Math.round(bytes))}`;
}

function ratio(value: number | null): string {
  return value === null ? '-' : value.toFixed(2);
}

function withSpread(value: string, spread: [number, number] | null, runs: number, format: (n: number) => string): string {
  return runs > 1 && spread !== null ? `${value} [${format(spread[0])}..${format(spread[1])}]` : value;
}

/** The status of a variant that has no complete run: why not (the last run's error). */
function notComplete(summary: CompareSummary, label: string): string {
  const runs = summary.runs.filter((r) => r.label === label);
  const last = runs[runs.length - 1];
  return last === undefined ? 'not run' : last.status;
}

/** The summary table: medians over complete runs, [min..max] when a variant ran more than once. */
export function summaryTable(summary: CompareSummary): string {
  const aggregates = summary.variants ?? [];
  const rank = new Map(summary.ranking.map((label, i) => [label, i + 1]));
  const rows = aggregates.map((a: CompareVariantAggregate) => {
    if (a.completeRuns === 0) return [a.label, notComplete(summary, a.label), '', '', '', '', '', '', '', '', ''];
    return [
      a.label,
      String(rank.get(a.label) ?? '-'),
      formatBytes(a.rssStartBytes),
      withSpread(formatBytes(a.rssEndBytes), a.spread.rssEndBytes, a.completeRuns, (n) => formatBytes(n)),
      a.rssEndVsBaseline === null ? '-' : `${a.rssEndVsBaseline.toFixed(2)}x`,
      withSpread(signedBytes(a.rssGrowthPer10kRequests), a.spread.rssGrowthPer10kRequests, a.completeRuns, signedBytes),
      formatBytes(a.liveBytesEnd),
      ratio(a.totalOverheadEnd),
      ratio(a.externalFragEnd),
      withSpread(a.requestsPerSecond === null ? '-' : a.requestsPerSecond.toFixed(0), a.spread.requestsPerSecond, a.completeRuns, (n) => n.toFixed(0)),
      a.verdict ?? '-',
    ];
  });
  return formatTable(['variant', 'rank', 'RSS start', 'RSS end', 'vs first', 'RSS/10k req', 'live end', 'rss/live', 'frag', 'req/s', 'verdict'], rows);
}

/** The run drawn for a variant: its first complete run, else its first run with samples. */
function chartedRun(summary: CompareSummary, label: string): CompareVariantRun | undefined {
  const runs = summary.runs.filter((r) => r.label === label && r.requestsAtSample.length > 0);
  return runs.find((r) => r.status === 'complete') ?? runs[0];
}

export interface ChartSeries {
  label: string;
  /** Requests completed at each sample. */
  requests: number[];
  /** RSS at each sample, bytes (null where unknown). */
  rss: Array<number | null>;
}

/**
 * Resamples each series onto up to `width` columns from 0 to the most requests of any series: each
 * column shows the last sample at or before it. A series ends at its own last sample (asciichart
 * draws series of different lengths, but no gaps: an unknown RSS repeats the value before it).
 */
export function resample(series: readonly ChartSeries[], width: number): number[][] {
  const maxRequests = Math.max(1, ...series.flatMap((s) => s.requests));
  return series.map((s) => {
    const firstKnown = s.rss.find((v) => v !== null) ?? 0;
    const end = s.requests[s.requests.length - 1] ?? 0;
    const columns: number[] = [];
    let value = firstKnown / MiB;
    let next = 0;
    for (let column = 0; column < width; column++) {
      const at = (column / (width - 1)) * maxRequests;
      // Past the series' own end by more than one column: stop it there.
      if (column > 0 && at > end + maxRequests / (width - 1)) break;
      for (; next < s.requests.length && s.requests[next] <= at + 1e-9; next++) {
        const rss = s.rss[next];
        if (rss !== null) value = rss / MiB;
      }
      columns.push(value);
    }
    return columns;
  });
}

const COLOURS = [asciichart.blue, asciichart.red, asciichart.green, asciichart.magenta, asciichart.cyan, asciichart.yellow, asciichart.lightgray];

/**
 * The chart: RSS (MiB) against requests, one line per series, each labelled at the row where it
 * ends. Empty string when no series has two samples.
 */
export function rssChart(series: readonly ChartSeries[], options: { width?: number; height?: number; colour?: boolean } = {}): string {
  const drawn = series.filter((s) => s.rss.filter((v) => v !== null).length >= 2);
  if (drawn.length === 0) return '';
  const width = options.width ?? 60;
  const height = options.height ?? 14;
  const data = resample(drawn, width);
  const known = data.flat();
  const min = Math.min(...known);
  const max = Math.max(...known);
  const config: asciichart.PlotConfig = {
    height,
    min,
    max,
    format: (x: number) => `${x.toFixed(0).padStart(6)} MiB `,
  };
  if (options.colour === true) config.colors = drawn.map((_, i) => COLOURS[i % COLOURS.length]);
  const rows = asciichart.plot(data, config).split('\n');
  // Label each line where it ends, on the row asciichart draws it (asciichart.js plot():
  // ratio = height / range, row = round(max * ratio) - round(v * ratio)).
  const ratio = height / (max - min || 1);
  const labels = new Map<number, string[]>();
  drawn.forEach((s, i) => {
    const last = data[i][data[i].length - 1];
    const row = Math.round(max * ratio) - Math.round(last * ratio);
    labels.set(row, [...(labels.get(row) ?? []), s.label]);
  });
  const longest = Math.max(...rows.map((r) => r.replace(/\x1b\[[0-9;]*m/g, '').length));
  const labelled = rows.map((r, i) => {
    const names = labels.get(i);
    return names === undefined ? r : `${r}${' '.repeat(longest - r.replace(/\x1b\[[0-9;]*m/g, '').length)} <- ${names.join(', ')}`;
  });
  const maxRequests = Math.max(...drawn.flatMap((s) => s.requests));
  const axis = `${' '.repeat(11)}0 requests${' '.repeat(Math.max(1, width - 18 - String(maxRequests).length))}${maxRequests}`;
  return ['RSS vs requests', ...labelled, axis].join('\n');
}

/** The chart of a summary's runs, with their samples read back from the run directory. */
export function chartSeriesOf(summary: CompareSummary, rssOf: (run: CompareVariantRun) => Array<number | null>): ChartSeries[] {
  const series: ChartSeries[] = [];
  for (const a of summary.variants ?? []) {
    const run = chartedRun(summary, a.label);
    if (run === undefined) continue;
    series.push({ label: a.label, requests: run.requestsAtSample, rss: rssOf(run) });
  }
  return series;
}

/** The lines under the table: the ranking, failures and skips with their reasons. */
export function summaryNotes(summary: CompareSummary): string[] {
  const lines: string[] = [];
  const aggregates = summary.variants ?? [];
  const baseline = aggregates[0];
  if (summary.ranking.length > 0) lines.push(`Ranking (lowest RSS growth per 10k requests first): ${summary.ranking.join(' < ')}`);
  const measured = aggregates.filter((a) => a.rssEndBytes !== null);
  if (baseline !== undefined && baseline.rssEndBytes !== null && measured.length > 1) {
    const lowest = measured.reduce((best, a) => ((a.rssEndBytes as number) < (best.rssEndBytes as number) ? a : best));
    if (lowest.label !== baseline.label) {
      const saved = (baseline.rssEndBytes as number) - (lowest.rssEndBytes as number);
      lines.push(`Lowest RSS at the end: ${lowest.label}, ${formatBytes(lowest.rssEndBytes)} (${formatBytes(saved)} or ${((saved / (baseline.rssEndBytes as number)) * 100).toFixed(0)}% below ${baseline.label}).`);
    } else {
      lines.push(`Lowest RSS at the end: ${baseline.label} itself (${formatBytes(baseline.rssEndBytes)}).`);
    }
  }
  for (const run of summary.runs) {
    if (run.status === 'complete' || run.error === undefined) continue;
    const which = summary.repeatCount > 1 ? ` (run ${run.repeat + 1})` : '';
    lines.push(`${run.status === 'skipped' ? 'not run' : run.status}: ${run.label}${which}: ${run.error.message}`);
  }
  return lines;
}
