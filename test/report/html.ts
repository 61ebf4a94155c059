/**
 * The HTML report in real headless Chromium (Debian's `chromium`, driven by puppeteer-core): built
 * from real runs of the C workload under glibc and jemalloc with the agent preloaded, it renders
 * with no network request, no console error and no page error; each chart has the series the data
 * calls for (read from uPlot's own objects) and draws them on its canvas; screenshots are written
 * to .tap/report-screenshots/ and their paths printed.
 */
/// <reference lib="dom" />
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { COMPARE_SUMMARY_FILE, type CompareSummary } from '../../lib/compare/summary';
import { escapeHtml, jsonForScript, loadChartLibrary, renderReport, writeReport } from '../../lib/report/html';
import { loadReportInput } from '../../lib/report/run-loader';
import { makeCompareRunDir, STEP, type CompareRunDir } from '../helpers/report-runs';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = resolve(__dirname, '..', '..', '.tap', 'report-screenshots');
const dir = mkdtempSync(join(tmpdir(), 'allocscope-report-html-'));
let browser: Browser | null = null;
t.teardown(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

t.test('escaping for HTML text and for JSON inside a script element', async (t) => {
  t.equal(escapeHtml(`<b a="1">'&'</b>`), '&#60;b a=&#34;1&#34;&#62;&#39;&#38;&#39;&#60;/b&#62;');
  const json = jsonForScript({ label: '</script><!-- \u2028' });
  t.notMatch(json, /<\/script|<!--|\u2028/);
  t.same(JSON.parse(json), { label: '</script><!-- \u2028' });
});

t.test('the chart library is read from node_modules', async (t) => {
  const library = loadChartLibrary();
  t.equal(library.name, 'uPlot');
  t.match(library.version, /^\d+\.\d+\.\d+$/);
  t.equal(library.license, 'MIT');
  t.ok(library.script.length > 20_000, 'the minified library');
  t.match(library.stylesheet, /\.uplot/);
});

t.test('the output path: a directory or a missing parent is refused with EINVAL', async (t) => {
  const file = join(dir, 'alone.ndjson');
  // A hand-made line is enough here: only the output path is under test.
  writeFileSync(file, `${JSON.stringify({ schema: 1, pid: 7, time: 1, monotonicNs: 1, source: 'procfs', level: 'proc-basic', levelNote: null, allocator: { name: 'glibc', version: null, detectedBy: 'x' }, allocatorBytes: {}, processBytes: { rss: 1 }, v8Bytes: null, ratios: {}, cost: { ns: 1, class: 'cheap' }, raw: {} })}\n`);
  const input = loadReportInput(file);
  t.throws(() => writeReport(input, dir), { code: 'EINVAL' });
  t.throws(() => writeReport(input, join(dir, 'no', 'such', 'dir', 'r.html')), { code: 'EINVAL' });
  const written = writeReport(input, join(dir, 'alone.html'));
  t.equal(written.bytes, readFileSync(join(dir, 'alone.html')).length);
});

interface ChartFacts {
  id: string;
  title: string;
  series: string[];
  x: number[];
  /** Non-null values per series. */
  points: number[];
}

interface PageFacts {
  charts: ChartFacts[];
  canvases: number;
  rows: string[][];
  errors: string[];
  requests: string[];
}

async function openReport(path: string, screenshot: string, t: Test): Promise<{ page: Page; facts: PageFacts }> {
  if (browser === null) throw new Error('no browser');
  const page = await browser.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warn') errors.push(`console.${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`pageerror: ${String(error)}`));
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));
  page.on('request', (request) => requests.push(request.url()));
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(`file://${path}`, { waitUntil: 'load', timeout: 20_000 });
  await page.waitForSelector('html[data-charts-ready]', { timeout: 20_000 });
  const facts = await page.evaluate(() => {
    const w = window as unknown as { allocscopeCharts: { id: string; title: string; plot: { series: { label: string }[]; data: (number | null)[][] } }[] };
    return {
      charts: w.allocscopeCharts.map((chart) => ({
        id: chart.id,
        title: chart.title,
        series: chart.plot.series.slice(1).map((s) => s.label),
        x: chart.plot.data[0] as number[],
        points: chart.plot.data.slice(1).map((values) => values.filter((v) => v !== null && v !== undefined).length),
      })),
      canvases: document.querySelectorAll('.chart canvas').length,
      rows: Array.from(document.querySelectorAll('#summary-table tbody tr')).map((row) => Array.from(row.querySelectorAll('td')).map((td) => td.textContent ?? '')),
    };
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
  const png = join(SCREENSHOTS, screenshot);
  await page.screenshot({ path: png, fullPage: true });
  const bytes = readFileSync(png);
  t.same([...bytes.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG', 'a PNG screenshot');
  t.ok(bytes.readUInt32BE(16) >= 1280 && bytes.readUInt32BE(20) > 900, `the screenshot is the full page (${bytes.readUInt32BE(16)}x${bytes.readUInt32BE(20)})`);
  t.comment(`screenshot: ${png}`);
  return { page, facts: { ...facts, errors, requests } };
}

/** Pixels of the chart's canvas within a small distance of `hex`: the series was drawn. */
async function pixelsOfColor(page: Page, chartId: string, hex: string): Promise<number> {
  return page.evaluate(
    (id, color) => {
      const canvas = document.querySelector(`[data-chart="${id}"] canvas`) as HTMLCanvasElement;
      const pixels = (canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, canvas.width, canvas.height).data;
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
      let count = 0;
      for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i + 3] > 200 && Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 40) count++;
      }
      return count;
    },
    chartId,
    hex,
  );
}

// In CI a missing browser must fail the run, as a missing allocator library does (helpers/child.ts).
const noBrowser = existsSync(CHROMIUM) || process.env.CI ? false : `${CHROMIUM} is not installed: apt-get install chromium`;

t.test('in headless Chromium', { skip: noBrowser }, async (t) => {
  let run: CompareRunDir | undefined;
  const [launched] = await Promise.all([
    puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 30_000 }),
    makeCompareRunDir(join(dir, 'run')).then((made) => {
      run = made;
    }),
  ]);
  browser = launched;
  const { summary, samples } = run as CompareRunDir;
  const withJemalloc = summary.runs.some((r) => r.label === 'jemalloc');
  const drawn = summary.runs.filter((r) => r.samplesFile !== null).map((r) => r.label);

  await t.test('a compare run directory: every chart with its series, nothing fetched, no errors', async (t) => {
    const out = join(dir, 'compare.html');
    const written = writeReport(loadReportInput(join(dir, 'run')), out);
    const html = readFileSync(out, 'utf8');
    t.notMatch(html, /<script[^>]+src=|<link[^>]+href=|@import/i, 'nothing to fetch: the library and styles are inlined');
    t.ok(written.bytes < 300_000, `the report is ${written.bytes} bytes`);
    t.comment(`compare report: ${written.bytes} bytes, ${written.charts} charts`);

    const { page, facts } = await openReport(out, 'compare.png', t);
    t.same(facts.errors, [], 'no console errors, page errors or failed requests');
    t.same(facts.requests, [`file://${out}`], 'the page asks for nothing but itself');
    t.equal(facts.canvases, facts.charts.length, 'one canvas per chart');
    t.equal(written.charts, facts.charts.length);

    const byId = new Map(facts.charts.map((chart) => [chart.id, chart]));
    const rss = byId.get('rss') as ChartFacts;
    t.equal(rss.title, 'RSS vs requests');
    t.same(rss.series, drawn, 'RSS vs requests: one series per run that has samples, failed and skipped ones left out');
    t.same(rss.points, drawn.map((label) => samples[label].length), 'every sample is a point (the cut last line left out)');
    t.same(rss.x, samples.glibc.map((_, i) => (i + 1) * STEP), 'x = requests completed at each sample');
    t.same(byId.get('live')?.series, drawn, 'live bytes vs requests: the same runs');

    // glibc keeps no active/resident figures; jemalloc has all four layers.
    t.same(byId.get('layers-0')?.series, ['RSS', 'allocated (live bytes)']);
    t.same(byId.get('ratios-0')?.series, ['rss/allocated', 'mapped/allocated (glibc arenas)']);
    t.match(byId.get('internals-0'), { title: 'glibc: glibc arenas: free and mapped bytes', series: ['mapped', 'free in heap', 'trimmable top (keepcost)', 'mmapped chunks (hblkhd)'] });
    if (withJemalloc) {
      t.same(byId.get('layers-1')?.series, ['RSS', 'resident (allocator)', 'active (allocator)', 'allocated (live bytes)']);
      t.same(byId.get('ratios-1')?.series, ['rss/allocated', 'active/allocated', 'resident/active', 'rss/resident']);
      t.match(byId.get('internals-1'), { title: /jemalloc pages/, series: ['mapped', 'retained (unmapped, kept)', 'dirty pages', 'muzzy pages', 'thread caches', 'metadata'] });
      t.same(byId.get('layers-1')?.points, [12, 12, 12, 12]);
    }
    const perRun = drawn.length * 3;
    t.equal(facts.charts.length, 2 + perRun, 'two cross-run charts, three per run with samples, none for failed or skipped runs');

    // The lines are on the canvas, in each run's colour (Okabe-Ito blue for the first, orange for the second).
    t.ok((await pixelsOfColor(page, 'rss', '#0072b2')) > 50, 'the first run is drawn on the RSS chart');
    if (withJemalloc) t.ok((await pixelsOfColor(page, 'rss', '#e69f00')) > 50, 'the second run is drawn on the RSS chart');

    t.same(
      facts.rows.map((row) => [row[1], row[2]]),
      summary.runs.map((r) => [r.label, r.status]),
      'the summary table: every run with its status, failed and skipped ones included',
    );
    const sections = await page.evaluate(() =>
      Array.from(document.querySelectorAll('section.run')).map((s) => ({ status: s.getAttribute('data-status'), error: s.querySelector('.error')?.textContent ?? null, notes: s.querySelector('.notes')?.textContent ?? null })),
    );
    t.match(sections.find((s) => s.status === 'failed'), { error: /^ESERVER: / });
    t.match(sections.find((s) => s.status === 'skipped'), { error: /apt-get install libmimalloc2\.0/ });
    t.match(sections.find((s) => s.status === 'interrupted'), { notes: /cut off/ });
    await page.close();
  });

  await t.test('labels from the run directory are text, never markup', async (t) => {
    const hostile = join(dir, 'hostile');
    mkdirSync(hostile);
    const summaryText = readFileSync(join(dir, 'run', COMPARE_SUMMARY_FILE), 'utf8');
    const tampered = JSON.parse(summaryText) as CompareSummary;
    const label = `</script><img src=x onerror="window.pwned=1">"'&`;
    tampered.runs = tampered.runs.slice(0, 1);
    tampered.runs[0].label = label;
    tampered.ranking = [label];
    writeFileSync(join(hostile, 'glibc.ndjson'), readFileSync(join(dir, 'run', 'glibc.ndjson')));
    writeFileSync(join(hostile, COMPARE_SUMMARY_FILE), JSON.stringify(tampered));
    const out = join(dir, 'hostile.html');
    writeReport(loadReportInput(hostile), out);
    const { page, facts } = await openReport(out, 'hostile.png', t);
    t.same(facts.errors, []);
    t.same(facts.charts[0].series, [label], 'the chart shows the label as given');
    t.equal(facts.rows[0][1], label, 'so does the table');
    t.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'no markup from the label ran');
    t.equal(await page.evaluate(() => document.querySelectorAll('img').length), 0);
    await page.close();
  });

  await t.test('a profile-pid --out file: the same charts against time, with the verdict', async (t) => {
    const file = join(dir, 'run', withJemalloc ? 'jemalloc.ndjson' : 'glibc.ndjson');
    const out = join(dir, 'profile.html');
    const written = writeReport(loadReportInput(file), out);
    t.comment(`profile report: ${written.bytes} bytes, ${written.charts} charts`);
    const { page, facts } = await openReport(out, 'profile.png', t);
    t.same(facts.errors, []);
    t.same(
      facts.charts.map((chart) => chart.id),
      ['rss', 'live', 'layers-0', 'ratios-0', 'internals-0'],
    );
    const rss = facts.charts[0];
    t.equal(rss.title, 'RSS vs time');
    t.equal(rss.series.length, 1);
    t.match(rss.series[0], /^pid \d+ \((jemalloc|glibc)\)$/);
    t.equal(rss.x[0], 0, 'x = seconds since the first sample');
    t.ok(rss.x[11] > 0.5 && rss.x[11] < 30, `12 samples 100 ms apart span ${rss.x[11]} s`);
    t.same(rss.points, [12]);
    const verdict = await page.evaluate(() => ({
      kind: document.querySelector('section.run .verdict-line .verdict')?.textContent,
      evidence: document.querySelectorAll('section.run details .evidence li').length,
    }));
    t.equal(verdict.kind, 'insufficient-data', 'diagnose() ran: about a second of samples is too short a window');
    t.ok(verdict.evidence > 0, 'with its evidence');
    await page.close();
  });
});

t.test('renderReport is deterministic for a fixed clock', async (t) => {
  const file = join(dir, 'alone.ndjson');
  const input = loadReportInput(file);
  const at = new Date('2026-01-02T03:04:05Z');
  t.equal(renderReport(input, { generatedAt: at }), renderReport(input, { generatedAt: at }));
  t.match(renderReport(input, { generatedAt: at }), /written 2026-01-02T03:04:05\.000Z/);
});
