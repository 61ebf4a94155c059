import t from 'tap';
import Ajv2020 from 'ajv/dist/2020';
import fc from 'fast-check';
import schema from '../schema/snapshot.v1.json';
import { commonRatios, costClassOf, NULL_ALLOCATOR_BYTES, processBytesFrom, ratioOf, type Snapshot } from '../lib/snapshot';
import { readerForRecord } from '../lib/sample';
import { snapshot, snapshotAsync } from '../lib/targets/self';
import { inChild, PRELOADABLE, runScenario, scenarioName, skipUnlessInstalled } from './helpers/child';

const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);

if (scenarioName() !== undefined) {
  void runScenario({
    async both() {
      return [snapshot(), snapshot({ detail: 'full' }), await snapshotAsync(), await snapshotAsync({ detail: 'full' })];
    },
  });
} else {
  for (const name of PRELOADABLE) {
    t.test(`${name}: every kind of snapshot validates against schema/snapshot.v1.json`, { skip: skipUnlessInstalled(name) }, async (t) => {
      const { value } = await inChild<Snapshot[]>(__filename, 'both', name);
      t.equal(value.length, 4);
      for (const s of value) {
        t.ok(validate(s), JSON.stringify(validate.errors));
        t.equal(s.allocator.name, name);
      }
    });
  }

  t.test('the schema rejects what the contract forbids', async (t) => {
    const good = snapshot();
    t.ok(validate(good));
    t.notOk(validate({ ...good, schema: 2 }), 'another schema version');
    t.notOk(validate({ ...good, processBytes: { ...good.processBytes, rss: -1 } }), 'negative RSS');
    t.notOk(validate({ ...good, allocatorBytes: { ...good.allocatorBytes, allocated: '12' } }), 'a string for bytes');
    t.notOk(validate({ ...good, ratios: { ...good.ratios, totalOverhead: { ratio: 1 } } }), 'a ratio without its bytes');
    const { rss: _dropped, ...withoutRss } = good.processBytes;
    t.notOk(validate({ ...good, processBytes: withoutRss }), 'a missing field (null is required, not absence)');
  });

  t.test('ratioOf: numerator/denominator with the signed byte delta, null when unknown', async (t) => {
    t.same(ratioOf(150, 100), { ratio: 1.5, bytes: 50 });
    t.same(ratioOf(50, 100), { ratio: 0.5, bytes: -50 });
    t.equal(ratioOf(null, 100), null);
    t.equal(ratioOf(100, null), null);
    t.equal(ratioOf(100, 0), null);
  });

  t.test('commonRatios follow DESIGN.md: active/allocated, resident/active, rss/resident, rss/allocated', async (t) => {
    const heap = { ...NULL_ALLOCATOR_BYTES, allocated: 100, active: 125, resident: 250 };
    const proc = { rss: 1000, rssAnon: 800, rssFile: null, rssShmem: null, swap: null, peakRss: null, pss: null, lazyFree: null };
    t.same(commonRatios(heap, proc), {
      externalFrag: { ratio: 1.25, bytes: 25 },
      allocatorRetention: { ratio: 2, bytes: 125 },
      nonAllocatorRss: { ratio: 4, bytes: 750 },
      totalOverhead: { ratio: 10, bytes: 900 },
    });
  });

  t.test('processBytesFrom: statm pages, anon = resident - shared, status kB preferred when read', async (t) => {
    const fromStatm = processBytesFrom(readerForRecord({ pageSize: 4096, 'statm.resident': 100, 'statm.shared': 30, 'rusage.ru_maxrss': 500 }));
    t.same(fromStatm, { rss: 409600, rssAnon: 70 * 4096, rssFile: null, rssShmem: null, swap: null, peakRss: 512000, pss: null, lazyFree: null });
    const fromStatus = processBytesFrom(
      readerForRecord({ 'status.VmRSS': 400, 'status.RssAnon': 300, 'status.RssFile': 90, 'status.RssShmem': 10, 'status.VmSwap': 5, 'status.VmHWM': 450, 'smaps_rollup.Pss': 350, 'smaps_rollup.LazyFree': 2 }),
    );
    t.same(fromStatus, { rss: 409600, rssAnon: 307200, rssFile: 92160, rssShmem: 10240, swap: 5120, peakRss: 460800, pss: 358400, lazyFree: 2048 });
  });

  t.test('costClassOf: the static class, raised by the measured time', async (t) => {
    t.equal(costClassOf('cheap', 5_000), 'cheap');
    t.equal(costClassOf('cheap', 50_000), 'moderate');
    t.equal(costClassOf('cheap', 5_000_000), 'expensive');
    t.equal(costClassOf('expensive', 1_000), 'expensive');
  });

  t.test('property: every ratio is its numerator over its denominator, and its bytes their difference', async (t) => {
    const bytes = fc.option(fc.integer({ min: 0, max: 2 ** 50 }), { nil: null });
    fc.assert(
      fc.property(bytes, bytes, bytes, bytes, (allocated, active, resident, rss) => {
        const heap = { ...NULL_ALLOCATOR_BYTES, allocated, active, resident };
        const proc = { rss, rssAnon: null, rssFile: null, rssShmem: null, swap: null, peakRss: null, pss: null, lazyFree: null };
        const ratios = commonRatios(heap, proc);
        const pairs = [
          [ratios.externalFrag, active, allocated],
          [ratios.allocatorRetention, resident, active],
          [ratios.nonAllocatorRss, rss, resident],
          [ratios.totalOverhead, rss, allocated],
        ] as const;
        return pairs.every(([ratio, numerator, denominator]) =>
          numerator === null || denominator === null || denominator === 0
            ? ratio === null
            : ratio !== null && ratio.bytes === numerator - denominator && Math.abs(ratio.ratio * denominator - numerator) <= 1e-9 * Math.max(1, numerator),
        );
      }),
      { numRuns: 2000 },
    );
    t.pass('2000 generated heaps');
  });
}
