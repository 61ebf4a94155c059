import t from 'tap';
import { aggregateRuns, rankVariants, runFigures } from '../../lib/compare/aggregate';
import type { CompareVariantRun } from '../../lib/compare/summary';
import { parseVariants } from '../../lib/compare/variants';
import { MiB, syntheticSnapshot } from '../helpers/synthetic';

t.test('run figures: start, end, Theil-Sen slope per 10k requests, last live bytes and ratios, verdict', async (t) => {
  // RSS rises 1 MiB per 1000 requests, one sample every 1000 requests and every 2 s; live bytes flat.
  const samples = Array.from({ length: 21 }, (_, i) =>
    syntheticSnapshot({ seconds: i * 2, rss: 50 * MiB + i * MiB, allocated: 10 * MiB, noV8: true, ratios: { totalOverhead: { ratio: (50 + i) / 10, bytes: (40 + i) * MiB } } }),
  );
  const requests = samples.map((_, i) => i * 1000);
  // One outlier does not move the robust slope.
  samples[7] = syntheticSnapshot({ seconds: 14, rss: 500 * MiB, allocated: 10 * MiB, noV8: true });
  const figures = runFigures(samples, requests);
  t.equal(figures.rssStartBytes, 50 * MiB);
  t.equal(figures.rssEndBytes, 70 * MiB);
  t.equal(figures.rssGrowthPer10kRequests, 10 * MiB);
  t.equal(figures.liveBytesEnd, 10 * MiB);
  t.equal(figures.totalOverheadEnd, 7);
  t.equal(figures.externalFragEnd, null);
  t.equal(figures.verdict, 'retention', '20 MiB of RSS growth over 40 s with live bytes flat');
  t.type(figures.verdictSummary, 'string');

  const none = runFigures([], []);
  t.same([none.rssStartBytes, none.rssGrowthPer10kRequests, none.verdict], [null, null, null]);
  t.equal(runFigures(samples.slice(0, 1), [0]).rssGrowthPer10kRequests, null, 'one sample has no slope');
});

function run(label: string, status: CompareVariantRun['status'], rssEnd: number | null, growth: number | null, rps: number | null, verdict: CompareVariantRun['verdict'] = 'stable'): CompareVariantRun {
  return {
    label,
    allocator: label.startsWith('jemalloc') ? 'jemalloc' : 'glibc',
    env: {},
    repeat: 0,
    status,
    samplesFile: null,
    requestsAtSample: [],
    requestsCompleted: 0,
    requestsFailed: 0,
    requestsPerSecond: rps,
    loadMs: 0,
    rssStartBytes: 1,
    rssEndBytes: rssEnd,
    rssGrowthPer10kRequests: growth,
    liveBytesEnd: null,
    totalOverheadEnd: null,
    externalFragEnd: null,
    verdict,
    verdictSummary: null,
  };
}

t.test('aggregates: medians and spread over complete runs, ratio to the first variant, ranking', async (t) => {
  const variants = parseVariants('glibc,jemalloc,glibc:MALLOC_ARENA_MAX=2');
  const runs = [
    run('glibc', 'complete', 100, 30, 1000, 'retention'),
    run('glibc', 'complete', 120, 10, 3000, 'retention'),
    run('glibc', 'complete', 110, 20, 2000, 'stable'),
    run('jemalloc', 'complete', 55, 5, 900),
    run('jemalloc', 'failed', 1, -100, 1),
    run('glibc:MALLOC_ARENA_MAX=2', 'failed', 10, 1, 1),
  ];
  const [glibc, jemalloc, tuned] = aggregateRuns(variants, runs);
  t.equal(glibc.completeRuns, 3);
  t.equal(glibc.rssEndBytes, 110);
  t.equal(glibc.rssGrowthPer10kRequests, 20);
  t.equal(glibc.requestsPerSecond, 2000);
  t.same(glibc.spread, { rssEndBytes: [100, 120], rssGrowthPer10kRequests: [10, 30], requestsPerSecond: [1000, 3000] });
  t.equal(glibc.verdict, 'retention');
  t.equal(glibc.rssEndVsBaseline, 1);
  t.equal(jemalloc.completeRuns, 1, 'the failed run is left out');
  t.equal(jemalloc.rssEndVsBaseline, 0.5);
  t.same([tuned.completeRuns, tuned.rssEndBytes, tuned.rssEndVsBaseline, tuned.verdict, tuned.spread.rssEndBytes], [0, null, null, null, null]);
  t.same(rankVariants([glibc, jemalloc, tuned]), ['jemalloc', 'glibc']);
  t.same(aggregateRuns(parseVariants('glibc'), [])[0].rssEndVsBaseline, null);
});
