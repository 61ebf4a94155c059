/**
 * The self-contained HTML report: the summary table, verdicts and charts of a compare run or a
 * profile file in one file that opens with no network. The charting library (uPlot, MIT) is read
 * from node_modules when the report is written and inlined with its stylesheet; the chart data
 * (chart-data.ts) travels as one JSON script element; a short page script hands each chart to
 * uPlot and lists them in `window.allocscopeCharts` (the browser test reads the series there).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { AllocscopeError } from '../errors';
import type { Verdict } from '../verdict';
import { chartsFor, type ChartSpec } from './chart-data';
import { formatBytes, formatDuration, formatRatio } from './format';
import type { ReportInput, ReportRun } from './run-loader';

/** The charting library's files, as they are inlined. */
export interface ChartLibrary {
  name: string;
  version: string;
  license: string;
  script: string;
  stylesheet: string;
}

/** uPlot from node_modules (a runtime dependency of allocscope): read at report time, never fetched by the page. */
export function loadChartLibrary(): ChartLibrary {
  try {
    const manifest = JSON.parse(readFileSync(require.resolve('uplot/package.json'), 'utf8')) as { version: string; license: string };
    return {
      name: 'uPlot',
      version: manifest.version,
      license: manifest.license,
      script: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
      stylesheet: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
    };
  } catch (error) {
    throw new AllocscopeError('EUNSUPPORTED', `the charting library uPlot is not installed (${(error as Error).message}); reinstall allocscope (npm install allocscope) so its dependency uplot is present.`);
  }
}

/** Text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON safe inside a <script> element: no "</script>", no "<!--", no line separators JS chokes on. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** A script's text inlined in a <script> element: "</script" cannot close it early. */
function inlineScript(text: string): string {
  return text.replace(/<\/(script)/gi, '<\\/$1');
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function signedBytes(value: number | null): string {
  return value === null ? '-' : `${value >= 0 ? '+' : ''}${formatBytes(value)}`;
}

function cell(text: string, className = ''): string {
  return `<td${className === '' ? '' : ` class="${className}"`}>${escapeHtml(text)}</td>`;
}

function verdictCell(run: ReportRun): string {
  if (run.verdictKind === null) return cell('-');
  return `<td><span class="verdict verdict-${escapeHtml(run.verdictKind)}">${escapeHtml(run.verdictKind)}</span></td>`;
}

function compareRow(run: ReportRun, rank: number | null): string {
  const c = run.compareRun;
  const requestsPerSecond = numberOrNull(c?.requestsPerSecond);
  return [
    '<tr>',
    cell(rank === null ? '-' : String(rank)),
    cell(run.label, 'label'),
    `<td><span class="status status-${escapeHtml(run.status)}">${escapeHtml(run.status)}</span></td>`,
    cell(String(run.snapshots.length)),
    cell(formatBytes(numberOrNull(c?.rssStartBytes))),
    cell(formatBytes(numberOrNull(c?.rssEndBytes))),
    cell(signedBytes(numberOrNull(c?.rssGrowthPer10kRequests))),
    cell(formatBytes(numberOrNull(c?.liveBytesEnd))),
    cell(numberOrNull(c?.totalOverheadEnd)?.toFixed(2) ?? '-'),
    cell(numberOrNull(c?.externalFragEnd)?.toFixed(2) ?? '-'),
    cell(requestsPerSecond === null ? '-' : requestsPerSecond.toFixed(0)),
    verdictCell(run),
    '</tr>',
  ].join('');
}

function profileRow(run: ReportRun): string {
  const first = run.snapshots[0];
  const last = run.snapshots[run.snapshots.length - 1];
  const seconds = run.x[run.x.length - 1] ?? 0;
  return [
    '<tr>',
    cell(run.label, 'label'),
    cell(String(run.snapshots.length)),
    cell(formatDuration(seconds * 1000)),
    cell(`${formatBytes(numberOrNull(first?.processBytes.rss))} → ${formatBytes(numberOrNull(last?.processBytes.rss))}`),
    cell(`${formatBytes(numberOrNull(first?.allocatorBytes.allocated))} → ${formatBytes(numberOrNull(last?.allocatorBytes.allocated))}`),
    cell(formatRatio(last?.ratios.totalOverhead ?? null)),
    cell(formatRatio(last?.ratios.externalFrag ?? null)),
    verdictCell(run),
    '</tr>',
  ].join('');
}

function summaryTable(input: ReportInput): string {
  if (input.kind === 'profile') {
    const header = ['process', 'samples', 'window', 'RSS', 'live bytes', 'rss/allocated (last)', 'active/allocated (last)', 'verdict'];
    return `<table id="summary-table"><thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${input.runs.map(profileRow).join('')}</tbody></table>`;
  }
  const ranking = input.compare?.ranking ?? [];
  const header = ['rank', 'variant', 'status', 'samples', 'RSS start', 'RSS end', 'RSS growth /10k req', 'live bytes end', 'rss/allocated', 'active/allocated', 'req/s', 'verdict'];
  const rows = input.runs.map((run) => {
    const position = run.compareRun === null ? -1 : ranking.indexOf(run.compareRun.label);
    return compareRow(run, position < 0 ? null : position + 1);
  });
  const rankingLine = ranking.length > 0 ? `<p class="ranking">Ranking (lowest RSS growth per 10k requests first): ${ranking.map((label) => `<b>${escapeHtml(label)}</b>`).join(' &lt; ')}</p>` : '';
  return `<div class="table-scroll"><table id="summary-table"><thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>${rankingLine}`;
}

function list(className: string, items: readonly string[]): string {
  return items.length === 0 ? '' : `<ul class="${className}">${items.map((item) => `<li>${escapeHtml(item)}</li>`).join('')}</ul>`;
}

function verdictDetails(verdict: Verdict): string {
  const remedies = verdict.remedies.map((remedy) => `${remedy.rank}. (${remedy.cost}) ${remedy.sentence}${remedy.commands.length > 0 ? ` — ${remedy.commands.join('; ')}` : ''}`);
  return [
    '<details><summary>evidence, remedies and unknowns</summary>',
    list('evidence', verdict.evidence.map((e) => e.sentence)),
    list('remedies', remedies),
    list('unknowns', verdict.unknowns),
    '</details>',
  ].join('');
}

function runSection(run: ReportRun, index: number, charts: readonly ChartSpec[]): string {
  const own = charts.filter((chart) => chart.id.endsWith(`-${index}`));
  const parts = [
    `<section class="run" id="run-${index}" data-status="${escapeHtml(run.status)}">`,
    `<h2>${escapeHtml(run.label)} <span class="status status-${escapeHtml(run.status)}">${escapeHtml(run.status)}</span></h2>`,
  ];
  if (run.error !== null) parts.push(`<p class="error">${escapeHtml(`${run.error.code}: ${run.error.message}`)}</p>`);
  if (run.verdictKind !== null) {
    parts.push(`<p class="verdict-line"><span class="verdict verdict-${escapeHtml(run.verdictKind)}">${escapeHtml(run.verdictKind)}</span> ${escapeHtml(run.verdictSummary ?? '')}</p>`);
  }
  if (run.verdict !== null) parts.push(verdictDetails(run.verdict));
  parts.push(list('notes', run.notes));
  if (run.snapshots.length === 0) parts.push('<p class="no-samples">No samples were taken in this run.</p>');
  parts.push(...own.map((chart) => `<div class="chart" data-chart="${chart.id}"></div>`));
  parts.push('</section>');
  return parts.join('\n');
}

function headerFacts(input: ReportInput): string[] {
  if (input.compare !== null) {
    const c = input.compare;
    return [
      `server: ${Array.isArray(c.command) ? c.command.join(' ') : '-'}`,
      `load: ${String(c.load)}, ${String(c.requestsPlanned)} requests in steps of ${String(c.step)}, concurrency ${String(c.concurrency)}${c.repeatCount > 1 ? `, ${c.repeatCount} repeats` : ''}`,
      `started ${String(c.startedAt)}; ${c.finishedAt === null ? 'not finished (stopped or still running)' : `finished ${String(c.finishedAt)}`}`,
    ];
  }
  const run = input.runs[0];
  const last = run.snapshots[run.snapshots.length - 1];
  return [`${run.snapshots.length} samples of pid ${last.pid} at level ${last.level}, malloc served by ${last.allocator.name}`, ...(last.levelNote !== null ? [`level: ${last.levelNote}`] : [])];
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.facts { color: #555; margin: 0.2em 0; }
.table-scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.label { text-align: left; }
.status, .verdict { border-radius: 3px; padding: 0 0.4em; font-size: 0.85em; }
.status-complete, .status-profile { background: #e5f4ea; } .status-failed { background: #fbe3e0; }
.status-interrupted { background: #fff1d6; } .status-skipped { background: #eee; color: #666; }
.verdict-retention, .verdict-live-growth, .verdict-js-heap-growth { background: #fbe3e0; }
.verdict-stable { background: #e5f4ea; } .verdict-insufficient-data { background: #eee; }
.error { color: #a3261b; } .notes { color: #7a5a00; }
.chart { margin: 1em 0; min-height: 200px; }
section.overview .chart { min-height: 360px; }
`;

/**
 * The page script: builds each chart from the JSON data with uPlot, formats byte and ratio axes,
 * and lists the charts in window.allocscopeCharts. Plain ES2017, no imports: it runs inlined.
 */
const PAGE_SCRIPT = `(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('allocscope-data').textContent);
  var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  function bytes(v) {
    if (v === null || v === undefined) return '-';
    var sign = v < 0 ? '-' : '';
    var n = Math.abs(v);
    var u = 0;
    while (n >= 1024 && u < UNITS.length - 1) { n /= 1024; u++; }
    return sign + (u === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + UNITS[u];
  }
  // Byte axes tick at binary steps (1, 2, 4 ... 512 of B, KiB, MiB, GiB, TiB), so labels read "16.0 MiB", not "15.3 MiB".
  var BYTE_STEPS = [];
  for (var unit = 1, k = 0; k < UNITS.length; k++, unit *= 1024) for (var m = 1; m < 1024; m *= 2) BYTE_STEPS.push(m * unit);
  function ratio(v) { return v === null || v === undefined ? '-' : v.toFixed(2); }
  // step: the distance between axis ticks, so neighbouring ticks read apart ("1.25k", "0.2 s");
  // none for the legend, which shows the value as it is.
  function decimalsFor(step) {
    for (var d = 0; d < 3; d++) { var scaled = step * Math.pow(10, d); if (Math.abs(scaled - Math.round(scaled)) < 1e-6) return d; }
    return 3;
  }
  function xValue(axis, v, step) {
    if (v === null || v === undefined) return '-';
    if (axis === 'seconds') {
      if (v >= 120) return (v / 60).toFixed(step === undefined ? 1 : Math.max(1, decimalsFor(step / 60))) + ' min';
      return v.toFixed(step === undefined ? (v < 10 ? 2 : 0) : decimalsFor(step)) + ' s';
    }
    if (step === undefined || v < 1000) return String(Math.round(v));
    return (v / 1000).toFixed(decimalsFor(step / 1000)) + 'k';
  }
  function tickStep(splits) { return splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1; }
  var charts = [];
  window.allocscopeCharts = charts;
  data.charts.forEach(function (spec) {
    var el = document.querySelector('[data-chart="' + spec.id + '"]');
    if (el === null) return;
    var format = spec.unit === 'bytes' ? bytes : ratio;
    var overview = el.closest('section.overview') !== null;
    var opts = {
      title: spec.title,
      width: Math.max(320, el.clientWidth || 900),
      height: overview ? 340 : 240,
      scales: { x: { time: false } },
      series: [{ label: spec.xAxis, value: function (u, v) { return xValue(spec.xAxis, v); } }].concat(spec.series.map(function (s) {
        return {
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: spec.fill ? s.color + '30' : undefined,
          spanGaps: true,
          points: { show: spec.x.length <= 60 },
          value: function (u, v) { return format(v); }
        };
      })),
      axes: [
        { label: spec.xAxis === 'seconds' ? 'time since the first sample' : 'requests completed', values: function (u, splits) { var step = tickStep(splits); return splits.map(function (v) { return xValue(spec.xAxis, v, step); }); } },
        { label: spec.unit === 'bytes' ? 'bytes' : 'ratio', size: 80, incrs: spec.unit === 'bytes' ? BYTE_STEPS : undefined, values: function (u, splits) { return splits.map(format); } }
      ]
    };
    var plot = new uPlot(opts, [spec.x].concat(spec.series.map(function (s) { return s.values; })), el);
    charts.push({ id: spec.id, title: spec.title, plot: plot });
  });
  window.addEventListener('resize', function () {
    charts.forEach(function (chart) {
      var el = document.querySelector('[data-chart="' + chart.id + '"]');
      chart.plot.setSize({ width: Math.max(320, el.clientWidth || 900), height: chart.plot.height });
    });
  });
  document.documentElement.setAttribute('data-charts-ready', String(charts.length));
})();`;

export interface RenderOptions {
  /** Shown in the header; defaults to now. */
  generatedAt?: Date;
  /** Defaults to loadChartLibrary(). */
  library?: ChartLibrary;
}

/** The whole page for `input`, as one string. */
export function renderReport(input: ReportInput, options: RenderOptions = {}): string {
  return renderWithCharts(input, chartsFor(input), options);
}

function renderWithCharts(input: ReportInput, charts: readonly ChartSpec[], options: RenderOptions): string {
  const library = options.library ?? loadChartLibrary();
  const generatedAt = options.generatedAt ?? new Date();
  const overview = charts.filter((chart) => chart.id === 'rss' || chart.id === 'live');
  const title = input.kind === 'compare' ? 'allocscope compare report' : `allocscope profile report: ${input.runs[0].label}`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${library.stylesheet.replace(/<\//g, '<\\/')}</style>`,
    `<style>${STYLE}</style>`,
    '</head><body>',
    `<h1>${escapeHtml(title)}</h1>`,
    ...headerFacts(input).map((fact) => `<p class="facts">${escapeHtml(fact)}</p>`),
    `<p class="facts">from ${escapeHtml(input.source)}, written ${escapeHtml(generatedAt.toISOString())}; charts drawn with ${escapeHtml(`${library.name} ${library.version} (${library.license})`)}, inlined.</p>`,
    '<section id="summary"><h2>Summary</h2>',
    summaryTable(input),
    '</section>',
    '<section class="overview" id="overview">',
    overview.length === 0 ? '<p class="no-samples">No run has samples to draw.</p>' : overview.map((chart) => `<div class="chart" data-chart="${chart.id}"></div>`).join('\n'),
    '</section>',
    ...input.runs.map((run, index) => runSection(run, index, charts)),
    `<script type="application/json" id="allocscope-data">${jsonForScript({ charts })}</script>`,
    `<script>/* ${library.name} ${library.version}, ${library.license} license, https://github.com/leeoniya/uPlot */\n${inlineScript(library.script)}</script>`,
    `<script>${PAGE_SCRIPT}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

/** What writeReport wrote. */
export interface WrittenReport {
  path: string;
  /** Size of the file, bytes. */
  bytes: number;
  /** Charts in the page. */
  charts: number;
}

/** Renders `input` and writes it to `outPath` (replacing a file there; a directory is refused). */
export function writeReport(input: ReportInput, outPath: string, options: RenderOptions = {}): WrittenReport {
  let isDirectory = false;
  try {
    isDirectory = statSync(outPath).isDirectory();
  } catch {
    // Nothing there yet: the usual case.
  }
  if (isDirectory) throw new AllocscopeError('EINVAL', `-o ${outPath} is a directory; name the HTML file to write, e.g. -o ${outPath.replace(/\/+$/, '')}/report.html.`, { path: outPath });
  const charts = chartsFor(input);
  const html = renderWithCharts(input, charts, options);
  try {
    writeFileSync(outPath, html);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new AllocscopeError(
      code === 'EACCES' || code === 'EPERM' ? 'EACCES' : 'EINVAL',
      `cannot write ${outPath}: ${(error as Error).message}. ${code === 'ENOENT' ? `Create ${dirname(outPath)} first, or choose` : 'Choose'} a writable file path.`,
      { path: outPath, errno: code },
    );
  }
  return { path: outPath, bytes: Buffer.byteLength(html), charts: charts.length };
}
