import t from 'tap';
import { plugin } from '../lib/tap';
import { heapFixture } from './helpers/heap-fixture';

t.test('t.nativeHeapStable passes on a clean function with a real tap test', async (t) => {
  const api = plugin(t);
  t.equal(await api.nativeHeapStable(() => heapFixture.release(heapFixture.retain(2, 64)), { iterations: 2000, maxBytesPerIteration: 8 }), true);
});

t.test('t.nativeHeapStable fails with the measurements on a leak', async (t) => {
  const outcomes: Array<{ ok: boolean; message?: string; extra?: Record<string, unknown> }> = [];
  // Records what the plugin reports, so a deliberate failure does not fail this suite.
  const recorder = {
    pass: (message: string, extra: Record<string, unknown>) => (outcomes.push({ ok: true, message, extra }), true),
    fail: (message: string, extra: Record<string, unknown>) => (outcomes.push({ ok: false, message, extra }), false),
  };
  const result = await plugin(recorder).nativeHeapStable(() => heapFixture.leak(64), { iterations: 5000, maxBytesPerIteration: 8, message: 'parser frees what it allocates' });
  t.equal(result, false);
  t.equal(outcomes.length, 1);
  t.equal(outcomes[0].ok, false);
  t.match(outcomes[0].message, /^parser frees what it allocates: native memory grows/);
  t.ok(Array.isArray(outcomes[0].extra?.measurements));
});

t.test('errors other than a leak propagate', async (t) => {
  await t.rejects(plugin(t).nativeHeapStable(() => 1, { iterations: -1 }), { code: 'EINVAL' });
});
