import t from 'tap';
import { Worker } from 'node:worker_threads';
import { allocator, guardedGlibcSnapshotAsync, purge, snapshot, snapshotAsync } from '../../lib/targets/self';
import type { Snapshot } from '../../lib/snapshot';
import { inChild, PRELOADABLE, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
import { heapFixture } from '../helpers/heap-fixture';

const BLOCKS = 10_000;
const BLOCK_BYTES = 1000;
// Besides the blocks, the fixture keeps a vector of 10,000 pointers (80 KB) and Node may allocate
// a little meanwhile; 512 KiB bounds both.
const SLACK = 512 * 1024;

interface RetainTrial {
  before: Snapshot;
  held: Snapshot;
  after: Snapshot;
}

interface RetainResult {
  name: string;
  detectedBy: string;
  usable: number;
  /** Before the warm-up: the only moment mimalloc has not yet committed pages for the blocks. */
  fresh: Snapshot;
  trials: RetainTrial[];
}

const TRIALS = 3;

/** App-live bytes: allocated minus objects parked in thread caches where the allocator counts them as allocated. */
function liveBytes(s: Snapshot): number | null {
  const { allocated, threadCache } = s.allocatorBytes;
  if (allocated === null) return null;
  return s.allocator.name === 'jemalloc' ? allocated - (threadCache ?? 0) : allocated;
}

const scenarios = {
  async retain(): Promise<RetainResult> {
    // Live bytes are process-wide: Node's background threads (GC, compilation) allocate and free
    // too. Warm up once, let the start-up work settle, then take several trials; the parent
    // judges the median.
    const blocks = Number(process.env.BLOCKS ?? BLOCKS);
    const fresh = snapshot();
    heapFixture.release(heapFixture.retain(blocks, BLOCK_BYTES));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const usable = heapFixture.usableSize(BLOCK_BYTES);
    const trials: RetainTrial[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const before = snapshot();
      const handle = heapFixture.retain(blocks, BLOCK_BYTES);
      const held = snapshot();
      heapFixture.release(handle);
      const after = snapshot();
      trials.push({ before, held, after });
    }
    const a = allocator();
    return { name: a.name, detectedBy: a.detectedBy, usable, fresh, trials };
  },
  fragment() {
    // 400,000 blocks of 16..512 B with every other one freed: ~50 MiB of free chunks that
    // cannot coalesce (references/limits.md §1).
    const handle = heapFixture.fragment(400_000, 16, 512, 2, 42);
    const fragmented = snapshot({ detail: 'full' });
    const trimmed = purge();
    heapFixture.release(handle);
    // Keep one block in 32 and free the rest: whole free pages appear, and trim can return them.
    const sparse = heapFixture.fragment(400_000, 16, 512, 32, 7);
    const sparseTrim = purge();
    heapFixture.release(sparse);
    return { fragmented, trimmed, sparseTrim };
  },
  async guarded() {
    // ~10,000 free chunks that cannot coalesce: every other one of 20,000 small blocks.
    const handle = heapFixture.fragment(20_000, 16, 512, 2, 11);
    const refused = await guardedGlibcSnapshotAsync(undefined, 100, 2);
    const allowed = await guardedGlibcSnapshotAsync({ detail: 'full' }, 1e7, 2);
    heapFixture.release(handle);
    // NaN does not survive the trip to the parent (JSON): say whether it was one.
    return { refused, refusedNsIsNaN: Number.isNaN(refused.nativeNs), allowed };
  },
  async concurrent() {
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       require(${JSON.stringify(require.resolve('../../dist/index.js'))});
       const a = require(${JSON.stringify(require.resolve('../../dist/index.js'))});
       const out = [];
       for (let i = 0; i < 200; i++) out.push(a.snapshot().allocatorBytes.allocated);
       parentPort.postMessage({ name: a.allocator().name, samples: out.length, allNumbers: out.every((v) => v === null || typeof v === 'number') });`,
      { eval: true },
    );
    const fromWorker = new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const asyncSamples = await Promise.all(Array.from({ length: 50 }, () => snapshotAsync()));
    const syncSamples = Array.from({ length: 200 }, () => snapshot());
    const workerResult = await fromWorker;
    await worker.terminate();
    return {
      workerResult,
      asyncCount: asyncSamples.length,
      asyncAllocator: asyncSamples.every((s) => s.allocator.name === allocator().name),
      syncCount: syncSamples.length,
      rssAllPositive: [...asyncSamples, ...syncSamples].every((s) => (s.processBytes.rss ?? 0) > 0),
    };
  },
};

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  for (const name of PRELOADABLE) {
    t.test(`${name}: detected, and allocated moves by 10,000 x 1000 B and back`, { skip: skipUnlessInstalled(name) }, async (t) => {
      // mimalloc commits 32 MiB up front, so its commit only moves with a heap larger than that.
      const blocks = name === 'mimalloc' ? 8 * BLOCKS : BLOCKS;
      const { value: r } = await inChild<RetainResult>(__filename, 'retain', name, { BLOCKS: String(blocks) });
      t.equal(r.name, name, `detected by: ${r.detectedBy}`);
      t.equal(r.trials.length, TRIALS);
      const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];
      const held = r.trials[0].held;
      if (name === 'mimalloc') {
        // mimalloc release builds keep no allocated figure: null, never a guess (metrics.md §5).
        t.equal(held.allocatorBytes.allocated, null);
        // The warm-up commits the pages and the trials reuse them, so growth is judged from before it.
        const committed = (held.allocatorBytes.mapped ?? 0) - (r.fresh.allocatorBytes.mapped ?? 0);
        t.ok(committed >= blocks * BLOCK_BYTES * 0.5, `commit grew ${committed} with ${blocks * BLOCK_BYTES} B of blocks`);
        return;
      }
      const grown = median(r.trials.map((x) => (liveBytes(x.held) as number) - (liveBytes(x.before) as number)));
      t.ok(grown >= BLOCKS * BLOCK_BYTES, `grew ${grown} >= ${BLOCKS * BLOCK_BYTES} (median of ${TRIALS})`);
      t.ok(grown <= BLOCKS * (r.usable + 16) + SLACK, `grew ${grown} <= ${BLOCKS} x (usable ${r.usable} + 16 header) + slack`);
      const back = median(r.trials.map((x) => (liveBytes(x.after) as number) - (liveBytes(x.before) as number)));
      t.ok(Math.abs(back) <= SLACK, `after free, live bytes are back within ${SLACK} (median ${back})`);
      t.ok((held.processBytes.rss ?? 0) > 0 && (held.processBytes.rssAnon ?? 0) > 0, 'rss and rssAnon read');
    });

    t.test(`${name}: snapshotAsync, worker_threads and concurrent calls`, { skip: skipUnlessInstalled(name) }, async (t) => {
      const { value } = await inChild<{ workerResult: { name: string; samples: number; allNumbers: boolean }; asyncCount: number; asyncAllocator: boolean; syncCount: number; rssAllPositive: boolean }>(__filename, 'concurrent', name);
      t.same(value.workerResult, { name, samples: 200, allNumbers: true });
      t.equal(value.asyncCount, 50);
      t.equal(value.asyncAllocator, true);
      t.equal(value.syncCount, 200);
      t.equal(value.rssAllPositive, true);
    });
  }

  t.test('glibc: a fragmented heap shows its free chunks, and purge() says honestly what it returned', async (t) => {
    const { value } = await inChild<{ fragmented: Snapshot; trimmed: { returnedBytes: number; rssBeforeBytes: number; rssAfterBytes: number; note: string }; sparseTrim: { returnedBytes: number; note: string } }>(__filename, 'fragment', 'glibc');
    const heap = value.fragmented.allocatorBytes;
    t.ok((heap.heapFree ?? 0) > 20 * 1048576, `heapFree ${heap.heapFree} > 20 MiB`);
    const arenaFree = value.fragmented.ratios.arenaFree;
    t.ok(arenaFree !== null && arenaFree.ratio > 1.5, `arenaFree ratio ${arenaFree?.ratio} > 1.5`);
    t.equal(arenaFree?.bytes, heap.heapFree, 'arenaFree bytes are the free bytes in the arenas');
    t.equal(value.trimmed.returnedBytes, value.trimmed.rssBeforeBytes - value.trimmed.rssAfterBytes);
    t.match(value.trimmed.note, value.trimmed.returnedBytes > 0 ? /returned .* to the kernel/ : /returned nothing measurable/);
    t.ok(value.sparseTrim.returnedBytes > 1048576, `trim of a sparse heap returned ${value.sparseTrim.returnedBytes} > 1 MiB`);
  });

  t.test('glibc: the guarded read counts the free lists first and reads only under the limit, in one worker trip', async (t) => {
    type Guarded = Awaited<ReturnType<typeof guardedGlibcSnapshotAsync>>;
    const { value } = await inChild<{ refused: Guarded; refusedNsIsNaN: boolean; allowed: Guarded }>(__filename, 'guarded', 'glibc');
    const { refused, allowed } = value;
    t.equal(refused.census.status, 0, 'the census was taken');
    t.ok(refused.census.listedChunks > 100, `over the limit: ${refused.census.listedChunks} chunks counted, at least 101`);
    t.equal(refused.snapshot, null, 'so the allocator was not read');
    t.ok(value.refusedNsIsNaN, 'and no read time is given');
    const c = allowed.census;
    t.equal(c.listedChunks, c.ordblks - c.arenas + c.smblks, 'listed chunks: the bins and fastbins, without each arena top');
    t.ok(c.listedChunks >= 9_000, `under a limit of 1e7 the census counted the fragment's ~10,000 free chunks (${c.listedChunks})`);
    t.ok(allowed.snapshot !== null, 'and the allocator was read');
    t.equal(allowed.snapshot?.level, 'agent');
    t.ok((allowed.snapshot?.allocatorBytes.heapFree ?? 0) > 0, 'with its figures');
    t.ok(allowed.snapshot?.raw.status !== undefined, "at the detail asked for ('full' reads /proc/self/status)");
    t.ok(allowed.nativeNs > 0, `the read timed on its worker: ${allowed.nativeNs} ns`);
    t.ok(c.ns > 0);
  });

  t.test('snapshots taken back to back share nothing (the synchronous path reuses its slot array)', async (t) => {
    const first = snapshot();
    const copy = JSON.parse(JSON.stringify(first)) as Snapshot;
    const second = snapshot({ detail: 'full' });
    t.strictSame(first, copy, 'the first snapshot is unchanged by the second');
    t.not(first.raw.statm, second.raw.statm);
    t.ok(second.monotonicNs > first.monotonicNs, 'each carries its own timestamp');
    t.equal(first.raw.status, undefined, 'summary detail reads no /proc/self/status');
    t.ok(second.raw.status !== undefined, 'full detail does, in the same array');
  });

  t.test('snapshot options are checked', async (t) => {
    t.throws(() => snapshot({ detail: 'everything' as 'full' }), { code: 'EINVAL' });
    t.throws(() => snapshot('full' as unknown as { detail: 'full' }), { code: 'EINVAL' });
    t.ok(snapshot({}) && snapshot({ detail: 'summary' }));
    t.throws(() => snapshot({ allocator: 'no' as unknown as boolean }), { code: 'EINVAL' });
  });

  t.test('{ allocator: false }: RSS and V8 without the allocator read, and it says so', async (t) => {
    for (const cheap of [snapshot({ allocator: false }), await snapshotAsync({ allocator: false })]) {
      t.equal(cheap.allocatorBytes.allocated, null);
      t.equal(cheap.ratios.totalOverhead, null, 'no ratio without allocator figures');
      t.ok((cheap.processBytes.rss ?? 0) > 0);
      t.ok((cheap.v8Bytes?.heapUsed ?? 0) > 0);
      t.equal(cheap.level, 'proc-basic');
      t.match(cheap.levelNote, /allocator not read/);
      t.equal(cheap.raw.mallinfo2, undefined, 'no allocator figures under raw either');
    }
    t.equal(snapshot({ allocator: false, detail: 'full' }).level, 'proc-detailed', 'with /proc/self/status');
  });

}
