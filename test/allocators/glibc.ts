import t from 'tap';
import { glibc, glibcMapping, glibcRelease, type Mallinfo2 } from '../../lib/allocators/glibc';
import { parseMallocInfo, type MallocInfo } from '../../lib/allocators/glibc-malloc-info';
import { native, type NativeBinding } from '../../lib/binding';
import { AllocscopeError } from '../../lib/errors';
import { readerForRecord } from '../../lib/sample';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
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

  async wrongAllocator() {
    return {
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
  for (const scenario of ['agreement', 'mmapped', 'trim']) void child(scenario, 'glibc');
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
