import t from 'tap';
import { DEFAULT_THRESHOLDS } from '../lib/verdict-options';
import { SERIES_LABELS, SERIES_NAMES, seriesValue, trendOf, windowClock } from '../lib/verdict-trend';
import { MiB, syntheticHistory, syntheticSnapshot } from './helpers/synthetic';

const T = DEFAULT_THRESHOLDS;

t.test('seriesValue reads each series, null where the source cannot tell', async (t) => {
  const s = syntheticSnapshot({ seconds: 0, rss: 1, allocated: 2, heapUsed: 3, heapTotal: 4, external: 5 });
  t.same(SERIES_NAMES.map((name) => seriesValue(s, name)), [2, 1, 3, 4, 5]);
  const noV8 = syntheticSnapshot({ seconds: 0, rss: 1, noV8: true });
  t.same(SERIES_NAMES.map((name) => seriesValue(noV8, name)), [null, 1, null, null, null]);
  t.equal(Object.keys(SERIES_LABELS).length, SERIES_NAMES.length);
});

t.test('a growing series clears every floor; the trend carries its units and fit', async (t) => {
  const history = syntheticHistory(20, 10, (i) => ({ rss: 100 * MiB + i * 2 * MiB }));
  const trend = trendOf('rss', history, windowClock(history), T)!;
  t.match(trend, {
    series: 'rss',
    samples: 20,
    spanMs: 190_000,
    slopeBytesPerSecond: 0.2 * MiB,
    startBytes: 100 * MiB,
    endBytes: 138 * MiB,
    latestBytes: 138 * MiB,
    growthBytes: 38 * MiB,
    growthRatio: 0.38,
    fit: { signAgreement: 1, residualMadBytes: 0, pairs: 190 },
    growing: true,
    missedFloors: [],
  });
  t.ok(Math.abs(trend.slopeBytesPerMinute - 12 * MiB) < 1e-6);
  t.ok(Math.abs(trend.slopeBytesPer1000Samples - 2000 * MiB) < 1e-3);
  t.match(trend.sentence, /^RSS: \+204.8 KiB\/s \(\+12.0 MiB\/min, 2.0 GiB per 1000 samples\); grew 38.0 MiB over 3.2 min \(100.0 MiB -> 138.0 MiB, \+38%, latest 138.0 MiB\); fit: 100% of 190 sample pairs agree, residual MAD 0 B, 20 samples; growing\.$/);
});

t.test('each floor on its own keeps a series from growing, and the sentence says which', async (t) => {
  const judge = (rss: (i: number) => number, n = 20, interval = 10) => {
    const history = syntheticHistory(n, interval, (i) => ({ rss: rss(i) }));
    return trendOf('rss', history, windowClock(history), T)!;
  };
  t.same(judge(() => 100 * MiB).missedFloors, ['rising', 'rate', 'bytes', 'ratio']);
  t.same(judge((i) => 100 * MiB - i * MiB).missedFloors, ['rising', 'rate', 'bytes', 'ratio']);
  // 9.5 MiB over the window: every floor but the absolute one.
  const small = judge((i) => 20 * MiB + i * 0.5 * MiB);
  t.same(small.missedFloors, ['bytes']);
  t.match(small.sentence, /not growing: less than 10.0 MiB over the window\./);
  // 19 MiB on a 1 GiB level: under 10% of it.
  t.same(judge((i) => 1024 * MiB + i * MiB).missedFloors, ['ratio']);
  // 12 MiB over 19 hours: slower than 256 KiB/min.
  t.same(judge((i) => 50 * MiB + (i * 12 * MiB) / 19, 20, 3600).missedFloors, ['rate']);
  // A zigzag that ends higher: most pairs disagree.
  const zigzag = judge((i) => 100 * MiB + (i % 2 === 0 ? i * 2 * MiB : -i * 0.5 * MiB + 60 * MiB));
  t.ok(zigzag.missedFloors.includes('fit'), `agreement ${zigzag.fit.signAgreement}`);
  t.match(zigzag.sentence, /fewer than 70% of sample pairs rise/);
  // A fitted start at or below zero: no ratio, and the ratio floor does not apply.
  const fromZero = judge((i) => i * 2 * MiB);
  t.equal(fromZero.growthRatio, null);
  t.same(fromZero.missedFloors, []);
  t.match(judge((i) => 100 * MiB - i * MiB).sentence, /changed -19.0 MiB/);
});

t.test('no trend without minSamples values at two distinct times', async (t) => {
  const few = syntheticHistory(5, 10, () => ({ rss: MiB }));
  t.equal(trendOf('rss', few, windowClock(few), T), null);
  const sameTime = syntheticHistory(12, 0, (i) => ({ rss: i * MiB }));
  t.equal(trendOf('rss', sameTime, windowClock(sameTime), T), null);
  const holes = syntheticHistory(12, 10, (i) => ({ rss: i % 2 === 0 ? MiB : null }));
  t.equal(trendOf('rss', holes, windowClock(holes), T), null, '6 of 12 carry RSS');
  t.same(windowClock([]), { originNs: 0, medianIntervalSeconds: 0 });
  t.same(windowClock(syntheticHistory(3, 5, () => ({ rss: 1 }))), { originNs: 5e12, medianIntervalSeconds: 5 });
});
