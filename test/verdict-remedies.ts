import t from 'tap';
import type { ReleaseResult } from '../lib/allocators/types';
import { REMEDY_COST_ORDER, type RemedyContext, remediesFor } from '../lib/verdict-remedies';

const MiB = 1024 * 1024;

const none: RemedyContext = {
  allocator: 'glibc',
  liveGrowth: false,
  jsHeapGrowth: false,
  retention: false,
  externalGrowth: false,
  arenaCount: null,
  manyArenas: 4,
  release: null,
  heldRatioKeys: [],
};

const release = (returnedBytes: number): ReleaseResult => ({
  allocator: 'glibc',
  action: 'malloc_trim(0)',
  rssBeforeBytes: 400 * MiB,
  rssAfterBytes: 400 * MiB - returnedBytes,
  returnedBytes,
  durationNs: 1000,
  note: '',
});

const ids = (c: Partial<RemedyContext>) => remediesFor({ ...none, ...c }).map((r) => r.id);

t.test('nothing grows: nothing to do', async (t) => {
  t.same(remediesFor(none), []);
});

t.test('a leak: native leak tools first, then recycling workers; Buffers growing add a heap snapshot', async (t) => {
  t.same(ids({ liveGrowth: true }), ['native-leak-tools', 'recycle-workers']);
  const [tools] = remediesFor({ ...none, liveGrowth: true });
  t.match(tools, { kind: 'investigate', cost: 'diagnostic', because: ['trend.allocated'], sentence: /leak-like.*heaptrack/ });
  const withBuffers = remediesFor({ ...none, liveGrowth: true, externalGrowth: true });
  t.same(withBuffers.map((r) => r.id), ['v8-heap-snapshot', 'native-leak-tools', 'recycle-workers']);
  t.same(withBuffers[0].because, ['trend.external']);
  t.match(withBuffers[0].sentence, /external memory/);
});

t.test('JS heap growth: V8 heap snapshots', async (t) => {
  const [snapshot, recycle] = remediesFor({ ...none, jsHeapGrowth: true });
  t.match(snapshot, { id: 'v8-heap-snapshot', because: ['trend.heapUsed'], commands: [/writeHeapSnapshot/, /--heapsnapshot-signal/] });
  t.match(recycle, { id: 'recycle-workers', because: ['trend.heapUsed'] });
});

t.test('glibc retention: purge, MALLOC_ARENA_MAX=2 when arenas multiply, jemalloc to try, recycling', async (t) => {
  t.same(ids({ retention: true }), ['purge', 'jemalloc', 'recycle-workers']);
  t.same(ids({ retention: true, arenaCount: 3 }), ['purge', 'jemalloc', 'recycle-workers'], '3 arenas are not many');
  const remedies = remediesFor({ ...none, retention: true, arenaCount: 16, heldRatioKeys: ['ratio.arenaFree'] });
  t.same(remedies.map((r) => r.id), ['purge', 'malloc-arena-max', 'jemalloc', 'recycle-workers']);
  t.same(remedies.map((r) => r.rank), [1, 4, 6, 7], 'ranked by cost');
  t.same(remedies[0].because, ['attribution', 'ratio.arenaFree']);
  t.match(remedies[0].sentence, /pass its result as \{ release \}/);
  t.match(remedies[1], { cost: 'restart-with-setting', commands: ['MALLOC_ARENA_MAX=2 node server.js'], because: ['arenas', 'attribution'], sentence: /^16 glibc arenas/ });
  const jemalloc = remedies[2];
  t.match(jemalloc.sentence, /and sometimes does not\. Try it and measure it on this workload/);
  t.match(jemalloc.commands[0], /^LD_PRELOAD=\S+libjemalloc\.so\.2 MALLOC_CONF=dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true /);
  t.notMatch(jemalloc.sentence, /will (fix|help)/, 'never a promise');
});

t.test('purge tried: the RSS it really returned, or honestly nothing', async (t) => {
  const [helped] = remediesFor({ ...none, retention: true, release: release(31 * MiB) });
  t.match(helped.sentence, /purge\(\) \(malloc_trim\(0\)\) returned 31.0 MiB of RSS \(400.0 MiB -> 369.0 MiB\)/);
  t.equal(helped.measured?.returnedBytes, 31 * MiB);
  t.same(helped.because, ['attribution', 'release']);
  const [useless] = remediesFor({ ...none, retention: true, release: release(8192) });
  t.match(useless.sentence, /returned nothing measurable \(8.0 KiB\)/);
});

t.test('other allocators: jemalloc gets decay settings, musl and unknown get no purge', async (t) => {
  t.same(ids({ retention: true, allocator: 'jemalloc' }), ['purge', 'jemalloc-decay', 'recycle-workers']);
  t.match(remediesFor({ ...none, retention: true, allocator: 'jemalloc' })[1].sentence, /Try it and measure/);
  t.same(ids({ retention: true, allocator: 'tcmalloc', arenaCount: 16 }), ['purge', 'jemalloc', 'recycle-workers'], 'arenas are glibc only');
  t.same(ids({ retention: true, allocator: 'musl' }), ['jemalloc', 'recycle-workers']);
  t.same(ids({ retention: true, allocator: 'unknown' }), ['jemalloc', 'recycle-workers']);
});

t.test('the cost order is total', async (t) => {
  t.equal(new Set(REMEDY_COST_ORDER).size, REMEDY_COST_ORDER.length);
  const all = remediesFor({ ...none, liveGrowth: true, jsHeapGrowth: true, retention: true, externalGrowth: true, arenaCount: 8 });
  t.same(all.map((r) => r.id), ['purge', 'v8-heap-snapshot', 'native-leak-tools', 'malloc-arena-max', 'jemalloc', 'recycle-workers']);
  t.same(all.at(-1)?.because, ['attribution', 'trend.allocated', 'trend.heapUsed']);
});
