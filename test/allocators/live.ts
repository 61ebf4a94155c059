import bindings from 'bindings';
import { constants } from 'node:os';
import t from 'tap';
import { glibc } from '../../lib/allocators/glibc';
import { jemalloc } from '../../lib/allocators/jemalloc';
import { liveDetection, measureRelease, requireAllocator, rssBytesNow, sampleFlags, slotNames } from '../../lib/allocators/live';
import { native, SAMPLE_WITH_STATUS } from '../../lib/binding';
import { AllocscopeError } from '../../lib/errors';
import { allocator, snapshot } from '../../lib/targets/self';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
import { heapFixture } from '../helpers/heap-fixture';

const MIB = 1048576;

/** test/fixtures/je_prefixed.cc: real jemalloc behind je_ (or _rjem_) names, plain malloc left to glibc. */
interface PrefixedJemalloc {
  loadError(): string | null;
  retain(count: number, size: number): number;
  release(handle: number): number;
}

/**
 * Loads the fixture into the global scope (RTLD_GLOBAL), where a prefixed jemalloc linked into
 * an executable sits, so dlsym(RTLD_DEFAULT, "je_mallctl") finds it. Before any detection.
 */
function loadPrefixedJemalloc(target: string): PrefixedJemalloc {
  const module = { exports: {} as PrefixedJemalloc };
  const file = (bindings as unknown as (options: { bindings: string; path: true }) => string)({ bindings: target, path: true });
  process.dlopen(module, file, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
  return module.exports;
}

async function outcome(call: () => unknown): Promise<{ ok: true } | { code: string | undefined }> {
  try {
    await call();
    return { ok: true };
  } catch (error) {
    return { code: (error as { code?: string }).code };
  }
}

const BLOCKS = 10_000;

/** A child with a prefixed jemalloc next to glibc's malloc: what is detected, and both heaps moving. */
async function prefixedScenario(target: string) {
  const fixture = loadPrefixedJemalloc(target);
  const loadError = fixture.loadError();
  if (loadError !== null) throw new Error(`the fixture could not load libjemalloc.so.2: ${loadError}`);
  const live = liveDetection();
  const before = jemalloc.summary();
  const handle = fixture.retain(BLOCKS, 1000);
  const held = jemalloc.summary();
  fixture.release(handle);
  const after = jemalloc.summary();
  // The second heap: plain malloc (the heap fixture) is glibc's, and jemalloc does not see it.
  const glibcBefore = glibc.mallinfo2();
  const jemallocBefore = jemalloc.summary();
  const plain = heapFixture.retain(1000, 1000);
  const glibcHeld = glibc.mallinfo2();
  const jemallocHeld = jemalloc.summary();
  heapFixture.release(plain);
  const printed = jemalloc.statsJson().jemalloc as { stats: { allocated: number } };
  const sameEpoch = jemalloc.summary({ advanceEpoch: false });
  const snap = snapshot();
  return {
    live,
    report: allocator(),
    snapshot: { allocator: snap.allocator, allocated: snap.allocatorBytes.allocated },
    before: before.allocatedBytes,
    held: held.allocatedBytes,
    after: after.allocatedBytes,
    threadCacheAfter: after.tcacheBytes,
    glibcGrew: glibcHeld.uordblks + glibcHeld.hblkhd - (glibcBefore.uordblks + glibcBefore.hblkhd),
    jemallocMoved: jemallocHeld.allocatedBytes - jemallocBefore.allocatedBytes,
    printedAllocated: printed.stats.allocated,
    summaryAllocated: sameEpoch.allocatedBytes,
    tcmalloc: await outcome(() => requireAllocator('tcmalloc', 'x()')),
  };
}

// jemalloc's TLS segment is 2,632 B (readelf -l libjemalloc.so.2) and initial-exec, and glibc
// keeps only 512 B of static TLS for objects dlopen'ed later (glibc.rtld.optional_static_tls);
// a program that links a prefixed jemalloc has it sized at start-up. 4 KiB, not more: the
// surplus comes out of every thread's stack, and 16 KiB already made pthread_create fail in Node.
const PREFIXED_ENV = { GLIBC_TUNABLES: 'glibc.rtld.optional_static_tls=4096' };
const child = childOnce(__filename);

if (scenarioName() !== undefined) {
  void runScenario({
    prefixedJe: () => prefixedScenario('je_prefixed'),
    prefixedRjem: () => prefixedScenario('rjem_prefixed'),
  });
} else {
  if (skipUnlessInstalled('jemalloc') === false) {
    void child('prefixedJe', 'glibc', PREFIXED_ENV);
    void child('prefixedRjem', 'glibc', PREFIXED_ENV);
  }
}

// Only in the parent: a child that registered these tests would start children of its own.
if (scenarioName() === undefined) {
  t.test('liveDetection: glibc serves this test process, detected once', async (t) => {
    const live = liveDetection();
    t.equal(live.name, 'glibc');
    t.match(live.detectedBy, /\S/);
    t.match(live.version, /^2\.\d+$/, 'gnu_get_libc_version');
    t.equal(live.mallocAllocator, 'glibc', 'no prefixed jemalloc here: plain malloc is the allocator reported');
    t.equal(live.symbolPrefix, '');
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

  for (const [scenario, prefix] of [['prefixedJe', 'je_'], ['prefixedRjem', '_rjem_']] as const) {
    t.test(`a ${prefix} prefixed jemalloc next to glibc's malloc: reported as jemalloc, glibc's heap the second one`, { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
      const { value } = await child<Awaited<ReturnType<typeof prefixedScenario>>>(scenario, 'glibc', PREFIXED_ENV);
      const { live, report } = value;
      t.equal(live.name, 'jemalloc', 'the prefixed jemalloc is the allocator reported');
      t.equal(live.symbolPrefix, prefix);
      t.equal(live.mallocAllocator, 'glibc', 'plain malloc is still glibc\'s');
      t.match(live.mallocLibrary, /libc\.so\.6$/);
      t.match(live.detectedBy, new RegExp(`^${prefix}mallctl is defined \\(prefixed jemalloc\\); plain malloc is served by .*libc\\.so\\.6$`));
      t.match(live.version, /^5\.\d+\.\d+-/, 'the version comes through the prefixed mallctl');
      t.same(report, { name: 'jemalloc', version: live.version, detectedBy: live.detectedBy, mallocLibrary: live.mallocLibrary, symbolPrefix: prefix }, 'allocator()');
      t.same(value.snapshot.allocator, { name: 'jemalloc', version: live.version, detectedBy: live.detectedBy }, 'snapshot().allocator');

      // Only the fixture allocates through the prefixed names, so jemalloc's books are quiet:
      // 10,000 blocks of 1000 B are 10,000 regions of the 1024 B size class.
      const grew = value.held - value.before;
      t.equal(grew, BLOCKS * 1024, `stats.allocated grew by ${grew}: 10,000 x 1024 B`);
      const left = value.after - value.before;
      t.ok(left >= 0 && left <= value.threadCacheAfter, `freeing gave it back but for the thread cache (${left} B left, tcache ${value.threadCacheAfter} B)`);
      t.equal(value.printedAllocated, value.summaryAllocated, 'summary == malloc_stats_print JSON of the same epoch');
      t.ok(value.snapshot.allocated !== null && value.snapshot.allocated < 1 * MIB, `snapshot().allocatorBytes are jemalloc's (${value.snapshot.allocated} B), not Node's glibc heap`);

      t.ok(value.glibcGrew >= 1000 * 1000, `plain malloc grew glibc's heap (${value.glibcGrew} B): the glibc namespace answers`);
      t.ok(Math.abs(value.jemallocMoved) < 64 * 1024, `and left jemalloc's (${value.jemallocMoved} B)`);
      t.same(value.tcmalloc, { code: 'ENOALLOCATOR' }, 'other namespaces still refuse');
    });
  }
}
