import t from 'tap';
import { DEFAULT_THRESHOLDS, resolveOptions } from '../lib/verdict-options';

const MiB = 1024 * 1024;

t.test('the defaults, documented in one place: Redis MEMORY DOCTOR floors and a minute of 10 samples', async (t) => {
  t.same(DEFAULT_THRESHOLDS, {
    minSamples: 10,
    minWindowMs: 60_000,
    minLevelBytes: 5 * MiB,
    minGrowthBytes: 10 * MiB,
    minGrowthRatio: 0.1,
    minGrowthBytesPerMinute: 256 * 1024,
    minSignAgreement: 0.7,
    minUnexplainedShare: 0.5,
    notableRatio: 1.1,
    notableRatioBytes: 10 * MiB,
    manyArenas: 4,
  });
  t.ok(Object.isFrozen(DEFAULT_THRESHOLDS));
  t.same(resolveOptions(undefined), { thresholds: DEFAULT_THRESHOLDS, arenaCount: null, release: null });
  t.same(resolveOptions({}), { thresholds: DEFAULT_THRESHOLDS, arenaCount: null, release: null });
});

t.test('every threshold can be overridden; the others keep their defaults', async (t) => {
  const release = { allocator: 'glibc' as const, action: 'malloc_trim(0)', rssBeforeBytes: 10, rssAfterBytes: 4, returnedBytes: 6, durationNs: 1, note: '' };
  const resolved = resolveOptions({ minSamples: 20, minWindowMs: 0, minSignAgreement: 0.8, arenaCount: 12, release });
  t.equal(resolved.thresholds.minSamples, 20);
  t.equal(resolved.thresholds.minWindowMs, 0);
  t.equal(resolved.thresholds.minSignAgreement, 0.8);
  t.equal(resolved.thresholds.minGrowthBytes, 10 * MiB);
  t.equal(resolved.arenaCount, 12);
  t.equal(resolved.release, release);
  t.same(resolveOptions({ arenaCount: null, release: null }), { thresholds: DEFAULT_THRESHOLDS, arenaCount: null, release: null });
});

t.test('invalid options are EINVAL with a sentence', async (t) => {
  const cases: [string, unknown][] = [
    ['a string', 'fast'],
    ['an array', []],
    ['null', null],
    ['an unknown key', { minSample: 10 }],
    ['minSamples below 3', { minSamples: 2 }],
    ['fractional minSamples', { minSamples: 10.5 }],
    ['negative window', { minWindowMs: -1 }],
    ['NaN growth', { minGrowthBytes: Number.NaN }],
    ['agreement under a coin toss', { minSignAgreement: 0.4 }],
    ['agreement over 1', { minSignAgreement: 1.5 }],
    ['share over 1', { minUnexplainedShare: 2 }],
    ['ratio under 1', { notableRatio: 0.9 }],
    ['one arena is not many', { manyArenas: 1 }],
    ['a string threshold', { minGrowthRatio: '0.1' }],
    ['zero arenas', { arenaCount: 0 }],
    ['fractional arenas', { arenaCount: 2.5 }],
    ['release not an object', { release: 5 }],
    ['release without numbers', { release: { action: 'malloc_trim(0)' } }],
    ['release without action', { release: { rssBeforeBytes: 1, rssAfterBytes: 1, returnedBytes: 0 } }],
  ];
  for (const [what, options] of cases) {
    t.throws(() => resolveOptions(options), { code: 'EINVAL' }, what);
  }
  t.throws(() => resolveOptions({ minSample: 10 }), { message: /has no option "minSample"; it knows minSamples/ });
});
