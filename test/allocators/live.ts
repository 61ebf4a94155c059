import t from 'tap';
import { liveDetection, measureRelease, requireAllocator, rssBytesNow, sampleFlags, slotNames } from '../../lib/allocators/live';
import { native, SAMPLE_WITH_STATUS } from '../../lib/binding';
import { AllocscopeError } from '../../lib/errors';
import { heapFixture } from '../helpers/heap-fixture';

const MIB = 1048576;

t.test('liveDetection: glibc serves this test process, detected once', async (t) => {
  const live = liveDetection();
  t.equal(live.name, 'glibc');
  t.match(live.detectedBy, /\S/);
  t.match(live.version, /^2\.\d+$/, 'gnu_get_libc_version');
  t.equal(liveDetection(), live, 'cached: malloc is bound once, at start-up');
});

t.test('requireAllocator: passes for the live allocator, ENOALLOCATOR with details otherwise', async (t) => {
  t.equal(requireAllocator('glibc', 'x()'), undefined);
  for (const wanted of ['jemalloc', 'tcmalloc', 'mimalloc', 'musl', 'unknown'] as const) {
    try {
      requireAllocator(wanted, 'x()');
      t.fail(`${wanted}: no error`);
    } catch (error) {
      t.ok(error instanceof AllocscopeError, `${wanted}: an AllocscopeError`);
      t.equal((error as AllocscopeError).code, 'ENOALLOCATOR');
      t.same((error as AllocscopeError).details, { wanted, live: 'glibc' });
    }
  }
});

t.test('rssBytesNow: the kernel\'s RSS in bytes, following memory being touched', async (t) => {
  const page = 4096;
  const rss = rssBytesNow();
  t.ok(rss > 10 * MIB && rss % page === 0, `${rss} B, a whole number of pages`);
  const node = process.memoryUsage.rss();
  t.ok(Math.abs(rss - node) < Math.max(0.1 * node, 8 * MIB), `close to process.memoryUsage.rss() ${node}`);
  const block = Buffer.alloc(64 * MIB, 1);
  const grown = rssBytesNow() - rss;
  t.ok(grown >= 56 * MIB, `touching 64 MiB grew RSS by ${grown}`);
  t.equal(block[block.length - 1], 1);
});

t.test('slotNames: the addon\'s slots, fetched once', async (t) => {
  const names = slotNames();
  t.equal(slotNames(), names, 'the same array every time');
  t.same(names, native().sampleSlotNames());
  for (const slot of ['monotonicNs', 'pageSize', 'statm.resident', 'mallinfo2.uordblks', 'jemalloc.stats.allocated', 'tcmalloc.generic.heap_size', 'mimalloc.current_commit']) {
    t.ok(names.includes(slot), slot);
  }
  t.equal(new Set(names).size, names.length, 'no slot twice');
});

t.test('sampleFlags', async (t) => {
  t.equal(sampleFlags(true), SAMPLE_WITH_STATUS);
  t.equal(sampleFlags(false), 0);
});

t.test('measureRelease: RSS before and after one call of the release', async (t) => {
  const handle = heapFixture.retain(1, 64 * MIB); // written by the fixture: 64 MiB resident, mmapped by glibc
  let calls = 0;
  const freed = measureRelease('glibc', 'free(64 MiB)', () => {
    calls++;
    heapFixture.release(handle); // glibc munmaps a chunk this size at once
  });
  t.equal(calls, 1);
  t.same([freed.allocator, freed.action], ['glibc', 'free(64 MiB)']);
  t.equal(freed.returnedBytes, freed.rssBeforeBytes - freed.rssAfterBytes);
  t.ok(freed.returnedBytes >= 56 * MIB, `returned ${freed.returnedBytes}`);
  t.match(freed.note, /^free\(64 MiB\) returned \d+\.\d MiB to the kernel \(RSS [\d.]+ MiB -> [\d.]+ MiB\)\.$/);

  let kept: Buffer | undefined;
  const grew = measureRelease('glibc', 'grow', () => {
    kept = Buffer.alloc(16 * MIB, 1);
    const until = process.hrtime.bigint() + 5_000_000n;
    while (process.hrtime.bigint() < until);
  });
  t.ok(grew.returnedBytes < 0, `RSS grew during the call: returned ${grew.returnedBytes}`);
  t.match(grew.note, /^grow returned nothing measurable \(RSS/);
  t.ok(grew.durationNs >= 5_000_000, `durationNs ${grew.durationNs} covers the call`);
  t.equal(kept?.length, 16 * MIB);

  t.throws(() => measureRelease('glibc', 'fails', () => {
    throw new AllocscopeError('EINVAL', 'release failed');
  }), { code: 'EINVAL' }, 'an error of the release call propagates');
});
