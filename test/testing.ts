import t from 'tap';
import { assertNoNativeLeak, measureNativeGrowth } from '../lib/testing';
import { AllocscopeError } from '../lib/errors';
import { inChild, runScenario, scenarioName, skipUnlessInstalled } from './helpers/child';
import { heapFixture } from './helpers/heap-fixture';

const REPEATS = 20;

if (scenarioName() !== undefined) {
  void runScenario({
    async repeated() {
      const caught: number[] = [];
      const silent: number[] = [];
      for (let run = 0; run < REPEATS; run++) {
        try {
          await assertNoNativeLeak(() => heapFixture.leak(64), { iterations: 10_000, maxBytesPerIteration: 8 });
        } catch (error) {
          if (error instanceof AllocscopeError && error.code === 'ELEAK') caught.push(run);
          else throw error;
        }
        // Allocates and frees per call (native), and a JS Buffer whose backing store is malloc'd.
        const clean = await assertNoNativeLeak(
          () => {
            heapFixture.release(heapFixture.retain(4, 64));
            return Buffer.allocUnsafeSlow(256);
          },
          { iterations: 10_000, maxBytesPerIteration: 8 },
        ).then(
          () => true,
          () => false,
        );
        if (clean) silent.push(run);
      }
      const growth = await measureNativeGrowth(() => heapFixture.leak(64), { iterations: 10_000 });
      return { caught: caught.length, silent: silent.length, growth };
    },
  });
} else {
  for (const name of ['glibc', 'jemalloc', 'tcmalloc'] as const) {
    t.test(`${name}: a 64 B/call native leak over 10,000 calls is caught, a clean function passes, ${REPEATS} times in a row`, { skip: skipUnlessInstalled(name) }, async (t) => {
      const { value } = await inChild<{ caught: number; silent: number; growth: { basis: string; liveBytesPerIteration: number } }>(__filename, 'repeated', name, {}, { coverage: false });
      t.equal(value.caught, REPEATS, 'every leaking run throws ELEAK');
      t.equal(value.silent, REPEATS, 'no clean run is accused');
      t.equal(value.growth.basis, 'allocated');
      // 64 B plus the allocator's rounding and header (glibc: 16 B chunk header).
      // Other threads' frees can shave a fraction of a byte off the median (63.996 B seen under tcmalloc).
      t.ok(value.growth.liveBytesPerIteration >= 60 && value.growth.liveBytesPerIteration <= 96, `${value.growth.liveBytesPerIteration} B per call`);
    });
  }

  t.test('bad arguments are EINVAL', async (t) => {
    await t.rejects(measureNativeGrowth('x' as unknown as () => void), { code: 'EINVAL' });
    await t.rejects(measureNativeGrowth(() => 1, { iterations: -5 }), { code: 'EINVAL' });
    await t.rejects(measureNativeGrowth(() => 1, { iterations: 20, rounds: 50 }), { code: 'EINVAL' });
    await t.rejects(measureNativeGrowth(() => 1, { iterations: 100.5 }), { code: 'EINVAL' });
    await t.rejects(measureNativeGrowth(() => 1, null as unknown as object), { code: 'EINVAL' });
    await t.rejects(assertNoNativeLeak(() => 1, { maxBytesPerIteration: -1 }), { code: 'EINVAL' });
  });

  t.test('async functions are awaited', async (t) => {
    let calls = 0;
    const growth = await measureNativeGrowth(async () => {
      calls++;
      await Promise.resolve();
    }, { iterations: 100, warmup: 10, rounds: 4 });
    t.equal(calls, 110);
    t.equal(growth.iterations, 100);
    t.equal(growth.points.length, 5);
  });
}
