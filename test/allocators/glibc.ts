import t from 'tap';
import { type GlibcCensus, glibc, glibcMapping, glibcRelease, type Mallinfo2 } from '../../lib/allocators/glibc';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { parseMallocInfo, type MallocInfo } from '../../lib/allocators/glibc-malloc-info';
import { native, type NativeBinding } from '../../lib/binding';
import { AllocscopeError } from '../../lib/errors';
import { readerForRecord } from '../../lib/sample';
import { childOnce, inChild, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
import { heapFixture } from '../helpers/heap-fixture';

interface Outcome {
  code?: string;
  allocscopeError?: boolean;
  ok?: boolean;
}

async function outcome(call: () => unknown): Promise<Outcome> {
  try {
    await call();
    return { ok: true };
  } catch (error) {
    return { code: (error as { code?: string }).code, allocscopeError: error instanceof AllocscopeError };
  }
}

const MALLINFO2_FIELDS = ['arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost'] as const;
const sameMallinfo = (a: Mallinfo2, b: Mallinfo2) => MALLINFO2_FIELDS.every((field) => a[field] === b[field]);
const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
const BIG = 64 * 1048576; // above the largest dynamic mmap threshold (32 MiB): always mmapped
const CENSUS_FIELDS = ['arena', 'ordblks', 'smblks', 'fordblks', 'fsmblks', 'keepcost'] as const;
const FIXTURE = join(__dirname, '../../build/Release/heap_fixture.node');

/**
 * A worker thread (its own glibc arena) that fragments its heap with `chunks` free chunks, says
 * so, then sleeps in Atomics.wait (no allocation) until stopped; with `churn`, it instead
 * allocates and frees Buffers of varied sizes until stopped.
 */
function arenaWorker(mode: 'fragment' | 'churn', chunks: number): { ready: Promise<void>; stop: () => Promise<number> } {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const flag = workerData.flag;
     if (workerData.mode === 'fragment') {
       const fixture = require(workerData.fixture);
       const handle = fixture.fragment(2 * workerData.chunks, 16, 512, 2, 5);
       parentPort.postMessage('ready');
       Atomics.wait(flag, 0, 0);
       fixture.release(handle);
     } else {
       parentPort.postMessage('ready');
       const kept = [];
       for (let i = 0; Atomics.load(flag, 0) === 0; i++) {
         kept.push(Buffer.allocUnsafeSlow(16 + ((i * 7919) % 3000)));
         if (kept.length > 500) kept.splice(0, 1 + (i % 300));
       }
     }`,
    { eval: true, workerData: { mode, chunks, flag, fixture: FIXTURE } },
  );
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  const stop = async () => {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    return new Promise<number>((resolve) => worker.once('exit', resolve));
  };
  return { ready, stop };
}

type Agreed = { attempt: number; census: GlibcCensus; mallinfo2: Mallinfo2 } | null;
interface CensusOutcome {
  sync: Agreed;
  async: Agreed;
  capped: GlibcCensus;
  workerExit: number;
}

const sameCensus = (c: GlibcCensus, m: Mallinfo2) => CENSUS_FIELDS.every((field) => c[field] === m[field]);

const scenarios = {
  /**
   * mallinfo2 and malloc_info walk the same free lists. Node's own threads may malloc between
   * two calls, so take mallinfo2 before and after malloc_info and use a round where they agree.
   */
  async agreement() {
    await settle();
    for (let attempt = 1; attempt <= 50; attempt++) {
      const before = glibc.mallinfo2();
      const info = glibc.mallocInfo();
      const after = glibc.mallinfo2();
      if (sameMallinfo(before, after)) return { attempt, mallinfo2: before, info };
    }
    return null;
  },

  /** One 64 MiB block is one mmapped chunk: hblks +1, hblkhd +64 MiB (rounded to pages), and back. */
  async mmapped() {
    await settle();
    const rounds = [];
    for (let attempt = 0; attempt < 20 && rounds.length < 3; attempt++) {
      const before = glibc.mallinfo2();
      const handle = heapFixture.retain(1, BIG);
      const held = glibc.mallinfo2();
      heapFixture.release(handle);
      const after = glibc.mallinfo2();
      if (sameMallinfo(before, after)) rounds.push({ before, held, after });
    }
    return rounds;
  },

  trim() {
    // Keep one block in 32 of 400,000 small ones: most pages of the heap become wholly free.
    const handle = heapFixture.fragment(400_000, 16, 512, 32, 7);
    const trimmed = glibc.trim();
    heapFixture.release(handle);
    const padded = glibc.trim(1048576);
    return { trimmed, padded, viaRelease: glibcRelease() };
  },

  /**
   * The census against mallinfo2 on a quiet heap: 10,000 free chunks in the main arena, 10,000 in
   * a worker thread's arena. Taken between two mallinfo2 calls that agree (nothing moved).
   */
  async census() {
    const handle = heapFixture.fragment(20_000, 16, 512, 2, 9);
    const worker = arenaWorker('fragment', 10_000);
    await worker.ready;
    await settle();
    // Taken between two mallinfo2 calls, a census that is exact equals one of them in every field
    // (the calls themselves can allocate a block or two from an arena: before and after then
    // differ). Up to 100 tries 20 ms apart, for the rounds where another thread allocated too.
    const agree = async (take: () => GlibcCensus | Promise<GlibcCensus>) => {
      for (let attempt = 1; attempt <= 100; attempt++) {
        if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, 20));
        const before = glibc.mallinfo2();
        const census = await take();
        const after = glibc.mallinfo2();
        if (sameCensus(census, before)) return { attempt, census, mallinfo2: before };
        if (sameCensus(census, after)) return { attempt, census, mallinfo2: after };
      }
      return null;
    };
    const sync = await agree(() => glibc.census());
    const async = await agree(() => glibc.censusAsync());
    const capped = glibc.census({ maxChunks: 100 });
    const workerExit = await worker.stop();
    heapFixture.release(handle);
    return { sync, async, capped, workerExit };
  },

  /** Censuses while another thread allocates and frees as fast as it can: no crash, sane figures. */
  async censusRacing() {
    const worker = arenaWorker('churn', 0);
    await worker.ready;
    const results: Array<Pick<GlibcCensus, 'arenas' | 'arena' | 'ordblks' | 'complete'>> = [];
    const end = Date.now() + 2_000;
    while (Date.now() < end && results.length < 2_000) {
      const { arenas, arena, ordblks, complete } = results.length % 2 === 0 ? glibc.census() : await glibc.censusAsync();
      results.push({ arenas, arena, ordblks, complete });
    }
    const workerExit = await worker.stop();
    return { results, workerExit };
  },

  async wrongAllocator() {
    return {
      census: await outcome(() => glibc.census()),
      censusAsync: await outcome(() => glibc.censusAsync()),
      mallinfo2: await outcome(() => glibc.mallinfo2()),
      mallocInfo: await outcome(() => glibc.mallocInfo()),
      mallocInfoAsync: await outcome(() => glibc.mallocInfoAsync()),
      trim: await outcome(() => glibc.trim(0)),
      trimDefault: await outcome(() => glibc.trim()),
      release: await outcome(() => glibcRelease()),
      badPad: await outcome(() => glibc.trim(-1)),
    };
  },
};

/** Children start together at load (independent processes); each test awaits its own. */
const child = childOnce(__filename);

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  for (const scenario of ['agreement', 'mmapped', 'trim', 'censusRacing']) void child(scenario, 'glibc');
  // No V8 platform threads (compilers, concurrent GC): they allocate at any moment, and the
  // comparison needs a heap that keeps still across a census.
  const quietCensus = inChild<CensusOutcome>(__filename, 'census', 'glibc', { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --v8-pool-size=0` }, { coverage: false });
  quietCensus.catch(() => undefined);
  if (skipUnlessInstalled('jemalloc') === false) void child('wrongAllocator', 'jemalloc');

  t.test('mallinfo2: glibc >= 2.33 figures, all whole numbers', async (t) => {
    const m = glibc.mallinfo2();
    t.same(Object.keys(m).sort(), [...MALLINFO2_FIELDS, 'wrapMayOccur'].sort());
    for (const field of MALLINFO2_FIELDS) t.ok(Number.isSafeInteger(m[field]) && m[field] >= 0, `${field} = ${m[field]}`);
    t.equal(m.wrapMayOccur, false, 'glibc 2.36 has mallinfo2: no int wrap-around');
    t.equal(m.usmblks, 0, 'usmblks is always 0');
    t.equal(m.arena, m.uordblks + m.fordblks, 'arena = in-use + free bytes of the arenas (int_mallinfo)');
    t.ok(m.fsmblks <= m.fordblks, 'fastbin bytes are part of the free bytes');
    t.ok(m.ordblks >= 1, 'at least the top chunk of the main arena');
    t.ok(m.arena > 0 && m.uordblks > 0);
  });

  t.test('mallinfo2 agrees with malloc_info taken back to back in a quiet child', async (t) => {
    const { value } = await child<{ attempt: number; mallinfo2: Mallinfo2; info: MallocInfo & { xml: string } } | null>('agreement', 'glibc');
    if (value === null) {
      t.fail('mallinfo2 never stayed still across a malloc_info call in 50 tries');
      return;
    }
    const { mallinfo2: m, info } = value;
    const totals = info.totals;
    t.comment(`agreed on attempt ${value.attempt} with ${info.arenas.length} arenas`);
    // Which figures correspond, from glibc's malloc/malloc.c (__libc_mallinfo2, int_mallinfo and
    // __malloc_info, read in bminor/glibc; this machine's Debian 12 glibc 2.36 agrees exactly).
    // __libc_mallinfo2 sums int_mallinfo over the arenas; __malloc_info walks the same arenas,
    // each under its lock, and prints the sums as <total> elements. Per arena, both start from the top chunk
    // (avail = chunksize(top), nblocks = 1), then walk the fastbins (nfastblocks / fastavail)
    // and the regular bins 1..NBINS-1. So, summed over the arenas:
    //   ordblks  == total rest count  (top + every regular-bin chunk)
    //   smblks   == total fast count, fsmblks == total fast size (chunksize x count per fastbin)
    //   arena    == system current    (system_mem of each arena)
    //   hblks / hblkhd == total mmap count / size (mp_.n_mmaps, mp_.mmapped_mem)
    //   fordblks == fast size + rest size - (rest count - arenas): malloc_info sizes regular-bin
    //     chunks with chunksize_nomask(), which keeps the PREV_INUSE bit (always set on a binned
    //     chunk: its lower neighbour is in use, or they would have coalesced) = 1 byte more per
    //     chunk than int_mallinfo's chunksize(); the top chunk (one per arena) is masked in both.
    // uordblks (= arena - fordblks) and keepcost (main arena's top) have no <total> of their
    // own; usmblks is always 0. Exact equality holds because the probe's malloc_info stream is
    // opened once and kept, so nothing is allocated between or during the reads
    // (native/probe/glibc_probe.c); tcache chunks are counted by neither.
    const fast = totals.fast ?? { count: NaN, bytes: NaN };
    const rest = totals.rest ?? { count: NaN, bytes: NaN };
    t.equal(totals.systemCurrentBytes, m.arena, 'system current == arena');
    t.equal(totals.mmap?.bytes, m.hblkhd, 'mmap size == hblkhd');
    t.equal(totals.mmap?.count, m.hblks, 'mmap count == hblks');
    t.equal(rest.count, m.ordblks, 'rest count == ordblks');
    t.equal(fast.count, m.smblks, 'fast count == smblks');
    t.equal(fast.bytes, m.fsmblks, 'fast size == fsmblks');
    t.equal(fast.bytes + rest.bytes - (rest.count - info.arenas.length), m.fordblks, 'fast size + rest size - (PREV_INUSE bit of each binned chunk) == fordblks');
    const { xml, ...parsed } = info;
    t.same(parseMallocInfo(xml), parsed, 'mallocInfo() is parseMallocInfo of its xml');
  });

  t.test('a 64 MiB block is one mmapped chunk in mallinfo2', async (t) => {
    const { value: rounds } = await child<Array<{ before: Mallinfo2; held: Mallinfo2; after: Mallinfo2 }>>('mmapped', 'glibc');
    t.ok(rounds.length >= 1, `${rounds.length} quiet rounds`);
    for (const { before, held } of rounds) {
      t.equal(held.hblks - before.hblks, 1, 'one more mmapped chunk');
      const grown = held.hblkhd - before.hblkhd;
      t.ok(grown >= BIG && grown <= BIG + 4096, `hblkhd grew by ${grown}: 64 MiB + header, rounded to a page`);
      t.ok(held.uordblks + held.hblkhd - (before.uordblks + before.hblkhd) >= BIG, 'the Snapshot\'s allocated (uordblks + hblkhd) grows with it');
    }
  });

  t.test('trim: returns whole free pages, measured, with a pad', async (t) => {
    const { value } = await child<{
      trimmed: { allocator: string; action: string; trimmed: boolean; rssBeforeBytes: number; rssAfterBytes: number; returnedBytes: number; durationNs: number; note: string };
      padded: { action: string; returnedBytes: number; rssBeforeBytes: number; rssAfterBytes: number };
      viaRelease: { allocator: string; action: string };
    }>('trim', 'glibc');
    const r = value.trimmed;
    t.equal(r.allocator, 'glibc');
    t.equal(r.action, 'malloc_trim(0)', 'the pad defaults to 0');
    t.equal(r.trimmed, true, 'malloc_trim said it released memory');
    t.equal(r.returnedBytes, r.rssBeforeBytes - r.rssAfterBytes);
    t.ok(r.returnedBytes > 4 * 1048576, `RSS dropped by ${r.returnedBytes}`);
    t.match(r.note, /returned .* MiB to the kernel/);
    t.ok(r.durationNs > 0);
    t.equal(value.padded.action, 'malloc_trim(1048576)');
    t.equal(value.padded.returnedBytes, value.padded.rssBeforeBytes - value.padded.rssAfterBytes);
    t.same([value.viaRelease.allocator, value.viaRelease.action], ['glibc', 'malloc_trim(0)'], 'purge() of the allocator table is trim(0)');
  });

  t.test('trim: a pad that is not a whole number of bytes is EINVAL', async (t) => {
    for (const pad of [-1, 1.5, 'x', NaN, Infinity, -Infinity, 2 ** 53, null, true, {}, [], 10n]) {
      t.throws(() => glibc.trim(pad as number), { code: 'EINVAL' }, String(pad));
    }
    const ok = glibc.trim(0);
    t.type(ok.trimmed, 'boolean');
    t.equal(ok.returnedBytes, ok.rssBeforeBytes - ok.rssAfterBytes);
  });

  t.test('mallocInfo and mallocInfoAsync parse malloc_info', async (t) => {
    const info = glibc.mallocInfo();
    t.match(info.xml, /^<malloc version="1">\n/);
    t.equal(info.version, 1);
    t.ok(info.arenas.length >= 1);
    t.equal(info.arenas[0].index, 0, 'the main arena first');
    const { xml, ...parsed } = info;
    t.same(parseMallocInfo(xml), parsed);
    const pending = glibc.mallocInfoAsync();
    t.type(pending, Promise);
    const later = await pending;
    t.match(later.xml, /<\/malloc>\n?$/);
    const { xml: laterXml, ...laterParsed } = later;
    t.same(parseMallocInfo(laterXml), laterParsed);
    t.ok(later.arenas.length >= 1 && later.totals.systemCurrentBytes !== null);
  });

  t.test('census: what mallinfo2 counts, taken without its locks, equal on a quiet heap of two arenas', async (t) => {
    const { value: r } = await quietCensus;
    for (const [name, agreed] of [['census()', r.sync], ['censusAsync()', r.async]] as const) {
      if (agreed === null) {
        t.fail(`${name}: equal to neither mallinfo2 around it in 100 tries`);
        continue;
      }
      const { census, mallinfo2: m } = agreed;
      t.comment(`${name} equal to mallinfo2 on attempt ${agreed.attempt}: ${census.arenas} arenas, ${census.ordblks + census.smblks} free chunks, ${(census.ns / 1e3).toFixed(0)} us`);
      for (const field of CENSUS_FIELDS) t.equal(census[field], m[field], `${name} ${field} == mallinfo2.${field}`);
      t.equal(census.complete, true, `${name}: every list walked to its end`);
      t.ok(census.arenas >= 2, `${name}: the worker's arena is on the ring (${census.arenas} arenas)`);
      // 2 x 10,000 freed, less what tcache keeps (7 per size class per thread) and what coalesced.
      t.ok(census.ordblks + census.smblks >= 18_000, `${name}: both fragmented arenas counted (${census.ordblks + census.smblks})`);
    }
    t.equal(r.capped.complete, false, 'maxChunks reached: not complete');
    t.equal(r.capped.ordblks - r.capped.arenas + r.capped.smblks, 100, 'it walked exactly maxChunks chunks (ordblks also counts each top)');
    t.equal(r.capped.listedChunks, 100, 'listedChunks says so');
    t.equal(r.workerExit, 0);
  });

  t.test('census while another thread allocates and frees: the host lives, every census answers', async (t) => {
    const { value: r } = await child<{ results: Array<Pick<GlibcCensus, 'arenas' | 'arena' | 'ordblks' | 'complete'>>; workerExit: number }>('censusRacing', 'glibc');
    t.ok(r.results.length >= 100, `${r.results.length} censuses in 2 s`);
    t.ok(r.results.every((c) => c.arenas >= 1 && c.arena > 0 && c.ordblks >= c.arenas), 'each found the arenas and their tops');
    t.comment(`${r.results.filter((c) => !c.complete).length} of ${r.results.length} saw a list change under them`);
    t.equal(r.workerExit, 0, 'the churning thread ran to its end');
  });

  t.test('census: a bad maxChunks is EINVAL', async (t) => {
    for (const bad of [{ maxChunks: 0 }, { maxChunks: 1.5 }, { maxChunks: '10' }, { maxChunks: 2e9 }, null, 7]) {
      t.throws(() => glibc.census(bad as never), { code: 'EINVAL' }, JSON.stringify(bad));
      await t.rejects(glibc.censusAsync(bad as never), { code: 'EINVAL' }, `async ${JSON.stringify(bad)}`);
    }
  });

  t.test('census refused by the probe (a glibc layout it does not know): EUNSUPPORTED naming the reason', async (t) => {
    const binding = native() as { -readonly [K in keyof NativeBinding]: NativeBinding[K] };
    const saved = { ...binding };
    t.teardown(() => Object.assign(binding, saved));
    const refused = { status: -2, arenas: 0, arena: 0, ordblks: 0, smblks: 0, fordblks: 0, fsmblks: 0, keepcost: 0, listedChunks: 0, complete: true, ns: 1 };
    binding.glibcCensus = () => refused;
    binding.glibcCensusAsync = async () => refused;
    t.throws(() => glibc.census(), { code: 'EUNSUPPORTED', message: /malloc_state layout is not one the census knows/ });
    await t.rejects(glibc.censusAsync(), { code: 'EUNSUPPORTED' });
  });

  t.test('a libc without mallinfo2/mallinfo or malloc_info: EUNSUPPORTED', async (t) => {
    // The probe returns null when dlsym finds no such function (native/probe/glibc_probe.c).
    const binding = native() as { -readonly [K in keyof NativeBinding]: NativeBinding[K] };
    const saved = { ...binding };
    t.teardown(() => Object.assign(binding, saved));
    binding.glibcMallinfo2 = () => null;
    binding.glibcMallocInfo = () => null;
    binding.glibcMallocInfoAsync = async () => null;
    t.throws(() => glibc.mallinfo2(), { code: 'EUNSUPPORTED' });
    t.throws(() => glibc.mallocInfo(), { code: 'EUNSUPPORTED' });
    await t.rejects(glibc.mallocInfoAsync(), { code: 'EUNSUPPORTED' });
  });

  t.test('glibc calls in a jemalloc process: ENOALLOCATOR', { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
    const { value } = await child<Record<string, Outcome>>('wrongAllocator', 'jemalloc');
    const wrong = { code: 'ENOALLOCATOR', allocscopeError: true };
    t.same(value.mallinfo2, wrong, 'mallinfo2: under jemalloc it would describe glibc\'s empty arenas');
    t.same(value.census, wrong, 'census: the same');
    t.same(value.censusAsync, wrong);
    t.same(value.mallocInfo, wrong);
    t.same(value.mallocInfoAsync, wrong, 'mallocInfoAsync rejects');
    t.same(value.trim, wrong);
    t.same(value.trimDefault, wrong);
    t.same(value.release, wrong);
    t.same(value.badPad, { code: 'EINVAL', allocscopeError: true }, 'the argument is checked first');
  });

  t.test('mapping: mallinfo2 -> Snapshot fields', async (t) => {
    const raw = { 'mallinfo2.uordblks': 3000, 'mallinfo2.hblkhd': 2000, 'mallinfo2.arena': 5000, 'mallinfo2.fordblks': 2000, 'mallinfo2.keepcost': 700 };
    const bytes = glibcMapping.bytesFrom(readerForRecord(raw));
    t.same(bytes, {
      allocated: 5000,
      active: null,
      resident: null,
      mapped: 7000,
      retained: null,
      dirty: null,
      muzzy: null,
      metadata: null,
      threadCache: null,
      heapFree: 2000,
      releasable: 700,
    });
    t.same(glibcMapping.extraRatios(bytes as never, {} as never), { arenaFree: { ratio: 7000 / 5000, bytes: 2000 } }, 'arenaFree bytes = mapped - allocated = fordblks');
    for (const missing of ['mallinfo2.uordblks', 'mallinfo2.hblkhd', 'mallinfo2.arena']) {
      const { [missing]: _gone, ...rest } = raw as Record<string, number>;
      t.equal(glibcMapping.bytesFrom(readerForRecord(rest)), null, `no ${missing}: no glibc totals`);
    }
    const partial = glibcMapping.bytesFrom(readerForRecord({ 'mallinfo2.uordblks': 1, 'mallinfo2.hblkhd': 0, 'mallinfo2.arena': 2 }));
    t.same([partial?.heapFree, partial?.releasable], [null, null], 'fields the sample lacks are null, not 0');
    t.same([glibcMapping.name, glibcMapping.rawKey, glibcMapping.slotPrefix, glibcMapping.costClass], ['glibc', 'mallinfo2', 'mallinfo2.', 'expensive']);

    // Against real figures: arenaFree's bytes are exactly fordblks.
    const m = glibc.mallinfo2();
    const real = glibcMapping.bytesFrom(readerForRecord(Object.fromEntries(MALLINFO2_FIELDS.map((f) => [`mallinfo2.${f}`, m[f]]))));
    t.equal(glibcMapping.extraRatios(real as never, {} as never).arenaFree?.bytes, m.fordblks);
  });
}
