import t from 'tap';
import { labelsOf, loadPeer, METRICS, ScrapeSource } from '../../lib/exporters/common';
import { monitor } from '../../lib/monitor';
import { snapshot } from '../../lib/targets/self';
import { keepAliveUntilTeardown } from '../helpers/keep-alive';

keepAliveUntilTeardown(t);

t.test('the metric table: unique names, a unit each, every Snapshot figure read', async (t) => {
  const keys = METRICS.map((m) => `${m.group}.${m.field}`);
  t.equal(new Set(keys).size, keys.length, 'no duplicates');
  t.ok(METRICS.every((m) => /^[a-z][a-z0-9_]*$/.test(m.field) && m.help.length > 10), 'snake_case fields with help');
  const s = snapshot({ detail: 'full' });
  const read = (group: string | null, field: string) => METRICS.find((m) => m.group === group && m.field === field)?.read(s);
  t.equal(read('process', 'rss'), s.processBytes.rss);
  t.equal(read('process', 'rss_anon'), s.processBytes.rssAnon);
  t.equal(read('allocator', 'allocated'), s.allocatorBytes.allocated);
  t.equal(read('allocator', 'heap_free'), s.allocatorBytes.heapFree);
  t.equal(read('v8', 'heap_used'), s.v8Bytes?.heapUsed);
  t.equal(read(null, 'total_overhead'), s.ratios.totalOverhead?.ratio);
  t.equal(read(null, 'total_overhead_delta'), s.ratios.totalOverhead?.bytes);
  t.equal(read(null, 'small_bin_frag'), null, 'a jemalloc-only ratio is null under glibc');
  t.equal(read('sample', 'cost'), s.cost.ns / 1e9);
  t.equal(read('sample', 'timestamp'), s.time / 1000);
  t.same(labelsOf(s), { allocator: 'glibc', level: 'agent' });
  const noV8 = { ...s, v8Bytes: null };
  t.equal(METRICS.find((m) => m.group === 'v8' && m.field === 'heap_used')?.read(noV8), null, 'no V8 figures: null');
});

t.test('ScrapeSource: one snapshot per maxAgeMs, within the budget; or a monitor\'s latest', async (t) => {
  const source = new ScrapeSource({ maxAgeMs: 1000 });
  const a = await source.read(0);
  const b = await source.read(500);
  t.equal(a, b, 'reads within maxAgeMs share one snapshot');
  const c = await source.read(2000);
  t.not(c, a, 'an older one is replaced');
  const m = monitor({ intervalMs: 1000, verdictEvery: 0 });
  const fromMonitor = new ScrapeSource({ monitor: m });
  t.equal(await fromMonitor.read(), null, 'before the monitor\'s first sample: nothing');
  await new Promise<void>((resolve) => m.once('sample', () => resolve()));
  t.equal(await fromMonitor.read(), m.latest, 'then its latest snapshot, with no read of its own');
  m.stop();
});

t.test('bad options and missing peers', async (t) => {
  t.throws(() => new ScrapeSource(5 as never), { code: 'EINVAL' });
  t.throws(() => new ScrapeSource({ monitor: {} as never }), { code: 'EINVAL' });
  t.throws(() => new ScrapeSource({ maxAgeMs: -1 }), { code: 'EINVAL' });
  t.throws(() => new ScrapeSource({ budget: { dutyCycle: 3 } }), { code: 'EINVAL' });
  t.throws(() => new ScrapeSource({ detail: 'all' as never }), { code: 'EINVAL' });
  t.throws(() => loadPeer('allocscope-peer-that-is-not-installed', 'this test'), { code: 'ENODEP', message: /npm install allocscope-peer-that-is-not-installed/ });
  t.equal(typeof loadPeer<{ Registry: unknown }>('prom-client', 'this test').Registry, 'function', 'an installed peer loads');
});
