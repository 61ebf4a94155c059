import t, { type Test } from 'tap';
import fc from 'fast-check';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { glibc } from '../../lib/allocators/glibc';
import { MALLOC_INFO_ELEMENT, parseMallocInfo, type MallocInfo, type MallocInfoArena, type SizeBucket } from '../../lib/allocators/glibc-malloc-info';
import { inChild, runScenario, scenarioName } from '../helpers/child';

const EMPTY: MallocInfo = {
  version: null,
  arenas: [],
  totals: { fast: null, rest: null, mmap: null, systemCurrentBytes: null, systemMaxBytes: null, aspaceTotalBytes: null, aspaceMprotectBytes: null },
  freeChunkHistogram: [],
};

const WORKERS = 4;

const scenarios = {
  /** Worker threads malloc in arenas of their own (glibc arena_get2): a malloc_info with several busy arenas. */
  async multiArena() {
    const root = dirname(require.resolve('../../package.json'));
    const source = `
      const { parentPort } = require('node:worker_threads');
      const fixture = require(${JSON.stringify(require.resolve('bindings'))})({ bindings: 'heap_fixture', module_root: ${JSON.stringify(root)} });
      // 20,000 blocks of 16..512 B, every other one freed: ~10,000 free chunks in this thread's arena.
      const handle = fixture.fragment(20000, 16, 512, 2, 3);
      parentPort.postMessage('ready');
      parentPort.once('message', () => { fixture.release(handle); parentPort.postMessage('released'); });`;
    const workers = Array.from({ length: WORKERS }, () => new Worker(source, { eval: true }));
    const next = (worker: Worker) => new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await Promise.all(workers.map(next));
    const { xml } = glibc.mallocInfo();
    const released = workers.map(next);
    for (const worker of workers) worker.postMessage('release');
    await Promise.all(released);
    await Promise.all(workers.map((worker) => worker.terminate()));
    return { xml };
  },
};

/** What glibc's own output always satisfies (malloc.c __malloc_info, 2.36). */
function checkGlibcInvariants(t: Test, info: MallocInfo, label: string): void {
  t.equal(info.version, 1, `${label}: version`);
  t.same(info.arenas.map((a) => a.index), info.arenas.map((_, at) => at), `${label}: heaps numbered 0..n-1 in order`);
  t.equal(info.arenas[0].aspaceSubheaps, null, `${label}: the main arena has no sub-heaps`);
  t.ok(info.arenas.slice(1).every((a) => (a.aspaceSubheaps ?? 0) >= 1), `${label}: other arenas have >= 1 sub-heap`);
  const sum = (pick: (a: MallocInfoArena) => number | null | undefined) => info.arenas.reduce((s, a) => s + (pick(a) ?? NaN), 0);
  const { totals } = info;
  t.equal(totals.fast?.count, sum((a) => a.fast?.count), `${label}: fast count is the sum of arenas'`);
  t.equal(totals.fast?.bytes, sum((a) => a.fast?.bytes), `${label}: fast size`);
  t.equal(totals.rest?.count, sum((a) => a.rest?.count), `${label}: rest count`);
  t.equal(totals.rest?.bytes, sum((a) => a.rest?.bytes), `${label}: rest size`);
  t.equal(totals.systemCurrentBytes, sum((a) => a.systemCurrentBytes), `${label}: system current`);
  t.equal(totals.systemMaxBytes, sum((a) => a.systemMaxBytes), `${label}: system max`);
  t.equal(totals.aspaceTotalBytes, sum((a) => a.aspaceTotalBytes), `${label}: aspace total`);
  t.equal(totals.aspaceMprotectBytes, sum((a) => a.aspaceMprotectBytes), `${label}: aspace mprotect`);
  t.ok(totals.mmap !== null, `${label}: mmap totals`);
  for (const arena of info.arenas) {
    const fast = arena.fast ?? { count: NaN, bytes: NaN };
    const rest = arena.rest ?? { count: NaN, bytes: NaN };
    const chunks = arena.sizes.reduce((s, b) => s + b.count, 0);
    const bytes = arena.sizes.reduce((s, b) => s + b.totalBytes, 0);
    // Every free chunk is in one bucket; fast + rest count them all, plus the top chunk.
    if (chunks + 1 !== fast.count + rest.count) t.fail(`${label}: heap ${arena.index}: ${chunks} chunks in buckets + top != fast ${fast.count} + rest ${rest.count}`);
    if (!(bytes < fast.bytes + rest.bytes)) t.fail(`${label}: heap ${arena.index}: bucket bytes ${bytes} + top != fast + rest ${fast.bytes + rest.bytes}`);
    for (const b of arena.sizes) {
      if (!(b.count >= 1 && b.fromBytes <= b.toBytes && b.fromBytes * b.count <= b.totalBytes && b.totalBytes <= b.toBytes * b.count)) {
        t.fail(`${label}: heap ${arena.index}: inconsistent bucket ${JSON.stringify(b)}`);
      }
    }
    if ((arena.systemCurrentBytes ?? 0) > (arena.systemMaxBytes ?? 0)) t.fail(`${label}: heap ${arena.index}: current > max`);
  }
  t.pass(`${label}: every heap's buckets account for its free chunks, and every bucket is consistent`);
  checkHistogram(t, info, label);
}

/** The histogram is the arenas' buckets merged by kind and range, sorted, nothing lost. */
function checkHistogram(t: Test, info: MallocInfo, label: string): void {
  const expected = new Map<string, { count: bigint; bytes: bigint }>();
  for (const b of info.arenas.flatMap((a) => a.sizes)) {
    const key = `${b.kind}:${b.fromBytes}:${b.toBytes}`;
    const seen = expected.get(key) ?? { count: 0n, bytes: 0n };
    expected.set(key, { count: seen.count + BigInt(b.count), bytes: seen.bytes + BigInt(b.totalBytes) });
  }
  const representable = [...expected].filter(([, v]) => v.count <= BigInt(Number.MAX_SAFE_INTEGER) && v.bytes <= BigInt(Number.MAX_SAFE_INTEGER));
  const actual = info.freeChunkHistogram.map((b) => [`${b.kind}:${b.fromBytes}:${b.toBytes}`, { count: BigInt(b.count), bytes: BigInt(b.totalBytes) }] as const);
  t.same(new Map(actual), new Map(representable), `${label}: histogram = arenas' buckets summed by kind and range`);
  t.equal(actual.length, new Map(actual).size, `${label}: one histogram entry per kind and range`);
  const sorted = [...info.freeChunkHistogram].sort((a, b) => a.fromBytes - b.fromBytes || a.toBytes - b.toBytes || a.kind.localeCompare(b.kind));
  t.same(info.freeChunkHistogram, sorted, `${label}: ordered by size`);
}

// ---- a model of malloc_info's output, printed exactly as glibc 2.36 prints it ----

interface ArenaModel {
  sizes: SizeBucket[];
  fast: { count: number; bytes: number } | null;
  rest: { count: number; bytes: number } | null;
  systemCurrentBytes: number;
  systemMaxBytes: number;
  aspaceTotalBytes: number;
  aspaceMprotectBytes: number;
}

function printArena(arena: ArenaModel, index: number): string {
  const sizes = arena.sizes.map((b) => `  <${b.kind} from="${b.fromBytes}" to="${b.toBytes}" total="${b.totalBytes}" count="${b.count}"/>\n`).join('');
  const total = (type: string, v: { count: number; bytes: number } | null) => (v === null ? '' : `<total type="${type}" count="${v.count}" size="${v.bytes}"/>\n`);
  return (
    `<heap nr="${index}">\n<sizes>\n${sizes}</sizes>\n${total('fast', arena.fast)}${total('rest', arena.rest)}` +
    `<system type="current" size="${arena.systemCurrentBytes}"/>\n<system type="max" size="${arena.systemMaxBytes}"/>\n` +
    `<aspace type="total" size="${arena.aspaceTotalBytes}"/>\n<aspace type="mprotect" size="${arena.aspaceMprotectBytes}"/>\n` +
    (index > 0 ? `<aspace type="subheaps" size="${index}"/>\n` : '') +
    '</heap>\n'
  );
}

function printMallocInfo(arenas: ArenaModel[], mmap: { count: number; bytes: number }): string {
  const sum = (pick: (a: ArenaModel) => number) => arenas.reduce((s, a) => s + pick(a), 0);
  return (
    `<malloc version="1">\n${arenas.map(printArena).join('')}` +
    `<total type="fast" count="${sum((a) => a.fast?.count ?? 0)}" size="${sum((a) => a.fast?.bytes ?? 0)}"/>\n` +
    `<total type="rest" count="${sum((a) => a.rest?.count ?? 0)}" size="${sum((a) => a.rest?.bytes ?? 0)}"/>\n` +
    `<total type="mmap" count="${mmap.count}" size="${mmap.bytes}"/>\n` +
    `<system type="current" size="${sum((a) => a.systemCurrentBytes)}"/>\n<system type="max" size="${sum((a) => a.systemMaxBytes)}"/>\n` +
    `<aspace type="total" size="${sum((a) => a.aspaceTotalBytes)}"/>\n<aspace type="mprotect" size="${sum((a) => a.aspaceMprotectBytes)}"/>\n` +
    '</malloc>\n'
  );
}

const BYTES = fc.oneof({ weight: 9, arbitrary: fc.nat({ max: 2 ** 40 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 2 ** 53 - 1) });
const BUCKET = fc.record({ kind: fc.constantFrom<'size' | 'unsorted'>('size', 'unsorted'), fromBytes: BYTES, toBytes: BYTES, totalBytes: BYTES, count: BYTES });
const TOTALS = fc.option(fc.record({ count: BYTES, bytes: BYTES }), { nil: null });
const ARENA = fc.record({
  sizes: fc.array(BUCKET, { maxLength: 6 }),
  fast: TOTALS,
  rest: TOTALS,
  systemCurrentBytes: fc.nat({ max: 2 ** 40 }),
  systemMaxBytes: fc.nat({ max: 2 ** 40 }),
  aspaceTotalBytes: fc.nat({ max: 2 ** 40 }),
  aspaceMprotectBytes: fc.nat({ max: 2 ** 40 }),
});
const MODEL = fc.record({ arenas: fc.array(ARENA, { minLength: 1, maxLength: 5 }), mmap: fc.record({ count: fc.nat(), bytes: fc.nat({ max: 2 ** 40 }) }) });

/** Damage to a printed malloc_info: cut, spliced, numbers made invalid, noise inserted. */
const NOISE = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom(
    '<', '>', '/>', '"', '</heap>', '<heap nr="x">', '<heap>', '<sizes>', '<size from="1" to="2" total="3"/>', '<total type="__proto__" count="1" size="2"/>',
    '<system type="constructor" size="9"/>', '<total type="rest" count="-1" size="1e3"/>', '<unknown a="1"/>', '<size from="99999999999999999999" to="1" total="1" count="1"/>',
    '<malloc version="2">', '\0', '\n', '<!-- x -->', "<total type='fast' count='1' size='2'/>",
  ),
);
const DAMAGED = fc
  .tuple(MODEL, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 3 }), NOISE, fc.nat({ max: 40 })), { maxLength: 6 }))
  .map(([model, edits]) => {
    let xml = printMallocInfo(model.arenas, model.mmap);
    for (const [at, kind, noise, length] of edits) {
      const position = at % (xml.length + 1);
      if (kind === 0) xml = xml.slice(0, position) + noise + xml.slice(position);
      else if (kind === 1) xml = xml.slice(0, position) + xml.slice(position + length);
      else if (kind === 2) xml = xml.slice(0, position);
      else xml = xml.replace(/"\d+"/, `"${noise}"`);
    }
    return xml;
  });

/** Every number in a parse result: non-negative safe integers. */
function numbersOf(info: MallocInfo): unknown[] {
  const out: unknown[] = [info.version];
  const totals = (v: { count: number; bytes: number } | null) => (v === null ? [] : [v.count, v.bytes]);
  const bucket = (b: SizeBucket) => [b.fromBytes, b.toBytes, b.totalBytes, b.count];
  for (const a of info.arenas) {
    out.push(a.index, ...a.sizes.flatMap(bucket), ...totals(a.fast), ...totals(a.rest));
    out.push(a.systemCurrentBytes, a.systemMaxBytes, a.aspaceTotalBytes, a.aspaceMprotectBytes, a.aspaceSubheaps);
  }
  const t = info.totals;
  out.push(...totals(t.fast), ...totals(t.rest), ...totals(t.mmap), t.systemCurrentBytes, t.systemMaxBytes, t.aspaceTotalBytes, t.aspaceMprotectBytes);
  out.push(...info.freeChunkHistogram.flatMap(bucket));
  return out;
}
const isCount = (v: unknown) => v === null || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  t.test('real malloc_info of this process', async (t) => {
    const { xml } = glibc.mallocInfo();
    checkGlibcInvariants(t, parseMallocInfo(xml), 'this process');
  });

  t.test(`real malloc_info of a child with ${WORKERS} worker threads allocating in their own arenas`, async (t) => {
    const { value } = await inChild<{ xml: string }>(__filename, 'multiArena', 'glibc');
    const info = parseMallocInfo(value.xml);
    checkGlibcInvariants(t, info, 'multi-arena');
    const busy = info.arenas.filter((a) => a.index > 0 && (a.rest?.count ?? 0) >= 5000 && (a.systemCurrentBytes ?? 0) >= 4 * 1048576);
    t.ok(busy.length >= WORKERS, `${busy.length} non-main arenas hold a worker's ~10,000 free chunks`);
    t.ok(info.freeChunkHistogram.length > 30, 'the histogram spans many sizes');
  });

  t.test('edge cases', async (t) => {
    t.same(parseMallocInfo(''), EMPTY, 'empty');
    t.same(parseMallocInfo('not xml at all'), EMPTY, 'not XML');
    for (const input of [undefined, null, 42, {}, ['<malloc version="1">']]) t.same(parseMallocInfo(input as unknown as string), EMPTY, `non-string ${String(input)}`);

    const one = parseMallocInfo(
      '<malloc version="1">\n<heap nr="0">\n<sizes>\n  <size from="17" to="32" total="64" count="2"/>\n  <size from="65" to="65" total="130" count="2"/>\n' +
        '  <unsorted from="625" to="1025" total="1650" count="2"/>\n</sizes>\n<total type="fast" count="2" size="64"/>\n<total type="rest" count="5" size="133760"/>\n' +
        '<system type="current" size="135168"/>\n<system type="max" size="139264"/>\n<aspace type="total" size="135168"/>\n<aspace type="mprotect" size="135168"/>\n</heap>\n' +
        '<total type="fast" count="2" size="64"/>\n<total type="rest" count="5" size="133760"/>\n<total type="mmap" count="1" size="1052672"/>\n' +
        '<system type="current" size="135168"/>\n<system type="max" size="139264"/>\n<aspace type="total" size="135168"/>\n<aspace type="mprotect" size="135168"/>\n</malloc>\n',
    );
    t.same(one, {
      version: 1,
      arenas: [
        {
          index: 0,
          sizes: [
            { kind: 'size', fromBytes: 17, toBytes: 32, totalBytes: 64, count: 2 },
            { kind: 'size', fromBytes: 65, toBytes: 65, totalBytes: 130, count: 2 },
            { kind: 'unsorted', fromBytes: 625, toBytes: 1025, totalBytes: 1650, count: 2 },
          ],
          fast: { count: 2, bytes: 64 },
          rest: { count: 5, bytes: 133760 },
          systemCurrentBytes: 135168,
          systemMaxBytes: 139264,
          aspaceTotalBytes: 135168,
          aspaceMprotectBytes: 135168,
          aspaceSubheaps: null,
        },
      ],
      totals: {
        fast: { count: 2, bytes: 64 },
        rest: { count: 5, bytes: 133760 },
        mmap: { count: 1, bytes: 1052672 },
        systemCurrentBytes: 135168,
        systemMaxBytes: 139264,
        aspaceTotalBytes: 135168,
        aspaceMprotectBytes: 135168,
      },
      freeChunkHistogram: [
        { kind: 'size', fromBytes: 17, toBytes: 32, totalBytes: 64, count: 2 },
        { kind: 'size', fromBytes: 65, toBytes: 65, totalBytes: 130, count: 2 },
        { kind: 'unsorted', fromBytes: 625, toBytes: 1025, totalBytes: 1650, count: 2 },
      ],
    }, 'one arena, as glibc 2.36 prints it');

    const noFast = parseMallocInfo('<malloc version="1"><heap nr="0"><sizes></sizes><total type="rest" count="1" size="4096"/></heap><total type="rest" count="1" size="4096"/></malloc>');
    t.same([noFast.arenas[0].fast, noFast.totals.fast, noFast.arenas[0].rest], [null, null, { count: 1, bytes: 4096 }], 'glibc master has no fastbins: fast is null');

    const bad = parseMallocInfo(
      '<heap nr="0"><size from="1" to="2" count="3"/><size from="a" to="2" total="3" count="4"/><size from="-1" to="2" total="3" count="4"/>' +
        '<size from="1e3" to="2" total="3" count="4"/><size from=" 1" to="2" total="3" count="4"/><size from="9007199254740992" to="2" total="3" count="4"/>' +
        '<size from="9007199254740991" to="9007199254740991" total="0" count="0"/><total type="rest" count="x" size="1"/><total count="1" size="1"/>' +
        '<system type="current" size=""/><system size="5"/><aspace type="total" size="12"/></heap>',
    );
    t.same(bad.arenas[0].sizes, [{ kind: 'size', fromBytes: 9007199254740991, toBytes: 9007199254740991, totalBytes: 0, count: 0 }], 'a bucket with a missing, negative, non-decimal or unsafe number is dropped');
    t.same([bad.arenas[0].rest, bad.arenas[0].systemCurrentBytes, bad.arenas[0].aspaceTotalBytes], [null, null, 12], 'invalid totals are null, valid ones kept');
    t.equal(bad.version, null, 'no <malloc> element: version null');

    const shapes = parseMallocInfo(
      '</heap><heap><total type="rest" count="1" size="2"/><heap nr="7">\n<size\n   count="1"   total="3"\tto="3" from="3"  />' +
        '<total type="rest" count="3" size="4" extra="y"/><unknown type="rest" count="9" size="9"/></heap><heap nr="x"><total type=\'rest\' count=\'1\' size=\'1\'/>',
    );
    t.same(shapes.arenas.map((a) => [a.index, a.rest, a.sizes.length]), [
      [0, { count: 1, bytes: 2 }, 0],
      [7, { count: 3, bytes: 4 }, 1],
      [2, null, 0],
    ], 'a stray </heap> is ignored; <heap> without nr takes its position; a new <heap> closes the open one; the last one needs no </heap>; attribute order and whitespace do not matter; single quotes are not XML glibc writes');

    const proto = parseMallocInfo('<malloc version="1"><heap nr="0"><total type="__proto__" count="1" size="2"/><total type="fast" count="3" size="4"/></heap></malloc>');
    t.same(proto.arenas[0].fast, { count: 3, bytes: 4 });
    t.equal(Object.getPrototypeOf(proto.arenas[0]), Object.prototype, 'type="__proto__" is only a name');
    t.equal(({} as Record<string, unknown>).count, undefined, 'nothing leaked into Object.prototype');

    const merged = parseMallocInfo(
      '<heap nr="0"><size from="33" to="48" total="96" count="2"/><unsorted from="33" to="48" total="40" count="1"/><size from="1" to="16" total="16" count="1"/></heap>' +
        '<heap nr="1"><size from="33" to="48" total="48" count="1"/><size from="33" to="64" total="64" count="1"/></heap>',
    );
    t.same(merged.freeChunkHistogram, [
      { kind: 'size', fromBytes: 1, toBytes: 16, totalBytes: 16, count: 1 },
      { kind: 'size', fromBytes: 33, toBytes: 48, totalBytes: 144, count: 3 },
      { kind: 'unsorted', fromBytes: 33, toBytes: 48, totalBytes: 40, count: 1 },
      { kind: 'size', fromBytes: 33, toBytes: 64, totalBytes: 64, count: 1 },
    ], 'same kind and range merged across arenas; kinds kept apart; sorted by from, to, kind');
    t.same(merged.arenas[0].sizes[0], { kind: 'size', fromBytes: 33, toBytes: 48, totalBytes: 96, count: 2 }, 'merging does not change the arenas\' buckets');

    const huge = parseMallocInfo(
      '<heap nr="0"><size from="1" to="1" total="9007199254740991" count="1"/><size from="2" to="2" total="2" count="1"/></heap>' +
        '<heap nr="1"><size from="1" to="1" total="9007199254740991" count="1"/></heap>',
    );
    t.same(huge.freeChunkHistogram, [{ kind: 'size', fromBytes: 2, toBytes: 2, totalBytes: 2, count: 1 }], 'a range whose sum is not a safe integer is left out, not rounded');
    t.equal(huge.arenas[1].sizes[0].totalBytes, 9007199254740991);

    t.ok(MALLOC_INFO_ELEMENT.flags.includes('g'));
    t.same([...'<size from="1" to="2"/><x/>'.matchAll(MALLOC_INFO_ELEMENT)].map((m) => m[1]), ['size', 'x'], 'the exported element pattern matches elements');
  });

  t.test('properties (fast-check)', async (t) => {
    const throwsNot = (xml: string) => {
      parseMallocInfo(xml);
      return true;
    };
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), throwsNot), { numRuns: 2000, seed: 1 });
    fc.assert(fc.property(fc.string({ maxLength: 300 }), throwsNot), { numRuns: 2000, seed: 2 });
    t.pass('never throws on any string');

    fc.assert(
      fc.property(DAMAGED, (xml) => {
        const info = parseMallocInfo(xml);
        return numbersOf(info).every(isCount);
      }),
      { numRuns: 2000, seed: 3 },
    );
    t.pass('on damaged malloc_info output, every number is null or a non-negative safe integer');

    fc.assert(
      fc.property(DAMAGED, (xml) => {
        const info = parseMallocInfo(xml);
        // Sum per kind and range with BigInt, keep the representable ones, compare.
        const expected = new Map<string, [bigint, bigint]>();
        for (const b of info.arenas.flatMap((a) => a.sizes)) {
          const key = `${b.kind}:${b.fromBytes}:${b.toBytes}`;
          const [count, bytes] = expected.get(key) ?? [0n, 0n];
          expected.set(key, [count + BigInt(b.count), bytes + BigInt(b.totalBytes)]);
        }
        const max = BigInt(Number.MAX_SAFE_INTEGER);
        const want = [...expected].filter(([, [c, b]]) => c <= max && b <= max).map(([k, [c, b]]) => `${k}:${c}:${b}`).sort();
        const got = info.freeChunkHistogram.map((b) => `${b.kind}:${b.fromBytes}:${b.toBytes}:${b.count}:${b.totalBytes}`).sort();
        return JSON.stringify(want) === JSON.stringify(got);
      }),
      { numRuns: 2000, seed: 4 },
    );
    t.pass('histogram totals equal the sum of the arenas\' buckets (per kind and range)');

    fc.assert(
      fc.property(MODEL, ({ arenas, mmap }) => {
        const info = parseMallocInfo(printMallocInfo(arenas, mmap));
        const expectedArenas = arenas.map((a, index) => ({ index, ...a, aspaceSubheaps: index > 0 ? index : null }));
        return JSON.stringify(info.arenas) === JSON.stringify(expectedArenas) && info.totals.mmap?.count === mmap.count && info.totals.mmap?.bytes === mmap.bytes;
      }),
      { numRuns: 1000, seed: 5 },
    );
    t.pass('what glibc prints is read back exactly (arenas, buckets, totals)');

    const start = process.hrtime.bigint();
    parseMallocInfo(`<heap nr="0">${'<size from="1" to="1" total="1" count="1"/>'.repeat(20000)}${'<a'.repeat(100000)}${' '.repeat(200000)}`);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    t.ok(ms < 1000, `1.4 MB of pathological input parsed in ${ms.toFixed(0)} ms`);
  });
}
