import t from 'tap';
import { aggregateRuns, rankVariants } from '../../lib/compare/aggregate';
import { COMPARE_SUMMARY_VERSION, type CompareSummary, type CompareVariantRun } from '../../lib/compare/summary';
import { chartSeriesOf, resample, rssChart, summaryNotes, summaryTable } from '../../lib/compare/terminal';
import { parseVariants } from '../../lib/compare/variants';

const MiB = 1024 * 1024;

function run(label: string, status: CompareVariantRun['status'], rssEnd: number | null, growth: number | null, repeat = 0, error?: { code: string; message: string }): CompareVariantRun {
  return {
    label,
    allocator: label.startsWith('jemalloc') ? 'jemalloc' : 'glibc',
    env: {},
    repeat,
    status,
    ...(error === undefined ? {} : { error }),
    samplesFile: status === 'skipped' ? null : `${label}.r${repeat + 1}.ndjson`,
    requestsAtSample: status === 'skipped' ? [] : [0, 1000, 2000],
    requestsCompleted: 2000,
    requestsFailed: 0,
    requestsPerSecond: 5000 + repeat,
    loadMs: 400,
    rssStartBytes: 2 * MiB,
    rssEndBytes: rssEnd,
    rssGrowthPer10kRequests: growth,
    liveBytesEnd: 10 * MiB,
    totalOverheadEnd: 1.5,
    externalFragEnd: status === 'complete' && label === 'jemalloc' ? 1.2 : null,
    verdict: 'stable',
    verdictSummary: null,
  };
}

function summaryOf(runs: CompareVariantRun[], labels = 'glibc,jemalloc,glibc:MALLOC_ARENA_MAX=2,mimalloc', repeatCount = 1): CompareSummary {
  const variants = aggregateRuns(parseVariants(labels), runs);
  return {
    version: COMPARE_SUMMARY_VERSION,
    command: ['server'],
    startedAt: '',
    finishedAt: '',
    requestsPlanned: 2000,
    step: 1000,
    concurrency: 10,
    load: 'builtin',
    repeatCount,
    runs,
    ranking: rankVariants(variants),
    variants,
  };
}

t.test('the table: one row per variant, ranks, ratio to the first, reasons for the rest', async (t) => {
  const summary = summaryOf([
    run('glibc', 'complete', 100 * MiB, 8 * MiB),
    run('jemalloc', 'complete', 50 * MiB, -1 * MiB),
    run('glibc:MALLOC_ARENA_MAX=2', 'failed', null, null, 0, { code: 'ESRCH', message: 'the server ended (signal SIGSEGV) during the load' }),
  ]);
  const table = summaryTable(summary);
  const lines = table.split('\n');
  t.match(lines[0], /variant\s+rank\s+RSS start\s+RSS end\s+vs first\s+RSS\/10k req\s+live end\s+rss\/live\s+frag\s+req\/s\s+verdict/);
  t.match(lines[2], /^glibc\s+2\s+2\.0 MiB\s+100\.0 MiB\s+1\.00x\s+\+8\.0 MiB\s+10\.0 MiB\s+1\.50\s+-\s+5000\s+stable$/);
  t.match(lines[3], /^jemalloc\s+1\s.*0\.50x\s+-1\.0 MiB.*1\.20/);
  t.match(lines[4], /^glibc:MALLOC_ARENA_MAX=2\s+failed/);
  t.match(lines[5], /^mimalloc\s+not run/);
  const notes = summaryNotes(summary);
  t.match(notes[0], 'Ranking (lowest RSS growth per 10k requests first): jemalloc < glibc');
  t.match(notes[1], /Lowest RSS at the end: jemalloc, 50\.0 MiB \(50\.0 MiB or 50% below glibc\)/);
  t.match(notes[2], /failed: glibc:MALLOC_ARENA_MAX=2: the server ended/);
});

t.test('with --repeat: the spread beside each median, and which run failed', async (t) => {
  const summary = summaryOf(
    [run('glibc', 'complete', 100 * MiB, 4 * MiB, 0), run('glibc', 'complete', 120 * MiB, 6 * MiB, 1), run('glibc', 'failed', null, null, 2, { code: 'EPROTO', message: 'boom' })],
    'glibc',
    3,
  );
  t.match(summaryTable(summary), /110\.0 MiB \[100\.0 MiB\.\.120\.0 MiB\]\s+1\.00x\s+\+5\.0 MiB \[\+4\.0 MiB\.\.\+6\.0 MiB\]/);
  t.match(summaryTable(summary), /5001 \[5000\.\.5001\]/, 'median of 5000 and 5001 requests per second');
  t.same(summaryNotes(summary), ['Ranking (lowest RSS growth per 10k requests first): glibc', 'failed: glibc (run 3): boom']);
  const skipped = summaryOf([run('jemalloc', 'skipped', null, null, 0, { code: 'ENOALLOCATOR', message: 'apt-get install libjemalloc2' })], 'jemalloc');
  t.same(summaryNotes(skipped), ['not run: jemalloc: apt-get install libjemalloc2']);
});

t.test('resampling: last sample at or before each column, each series ends where it ends', async (t) => {
  const [long, short, gappy] = resample(
    [
      { label: 'a', requests: [0, 50, 100], rss: [1 * MiB, 2 * MiB, 3 * MiB] },
      { label: 'b', requests: [0, 50], rss: [5 * MiB, 6 * MiB] },
      { label: 'c', requests: [0, 50, 100], rss: [null, 4 * MiB, null] },
    ],
    5,
  );
  t.same(long, [1, 1, 2, 2, 3]);
  t.same(short, [5, 5, 6, 6], 'stops one column past its end');
  t.same(gappy, [4, 4, 4, 4, 4], 'unknown RSS repeats the known value');
});

t.test('the chart: one labelled line per variant, requests on the x axis', async (t) => {
  const series = [
    { label: 'glibc', requests: [0, 1000, 2000, 3000], rss: [2 * MiB, 50 * MiB, 80 * MiB, 100 * MiB] },
    { label: 'jemalloc', requests: [0, 1000, 2000, 3000], rss: [2 * MiB, 40 * MiB, 45 * MiB, 44 * MiB] },
    { label: 'one-sample', requests: [0], rss: [3 * MiB] },
  ];
  const chart = rssChart(series, { width: 30, height: 10 });
  const lines = chart.split('\n');
  t.equal(lines[0], 'RSS vs requests');
  t.match(lines[1], /100 MiB.*<- glibc$/, 'glibc ends on the top row');
  t.ok(lines.some((l) => /44 MiB.*<- jemalloc$/.test(l) || /4\d MiB.*<- jemalloc$/.test(l)), 'jemalloc labelled where it ends');
  t.notMatch(chart, /one-sample/, 'a series with one sample is not drawn');
  t.match(lines[lines.length - 1], /0 requests\s+3000$/);
  t.equal(rssChart([series[2]]), '', 'nothing to draw');
  t.match(rssChart(series, { colour: true }), /\x1b\[/, 'colours on request');
  const flat = rssChart([{ label: 'flat', requests: [0, 10], rss: [MiB, MiB] }], { height: 4 });
  t.match(flat, /<- flat/, 'a flat line is drawn too');
});

t.test('chart series: the first complete run of each variant, else its first run with samples', async (t) => {
  const summary = summaryOf([run('glibc', 'failed', null, null, 0), run('glibc', 'complete', MiB, 0, 1), run('jemalloc', 'failed', null, null, 0), run('glibc:MALLOC_ARENA_MAX=2', 'skipped', null, null)], 'glibc,jemalloc,glibc:MALLOC_ARENA_MAX=2', 2);
  const seen: string[] = [];
  const series = chartSeriesOf(summary, (r) => {
    seen.push(`${r.label}.${r.repeat}`);
    return r.requestsAtSample.map(() => MiB);
  });
  t.same(seen, ['glibc.1', 'jemalloc.0']);
  t.same(series.map((s) => s.label), ['glibc', 'jemalloc']);
});
