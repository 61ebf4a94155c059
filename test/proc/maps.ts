import t, { type Test } from 'tap';
import fc from 'fast-check';
import { allocatorOfLibrary, classifyRegions, GLIBC_HEAP_MAX_BYTES, mapsSlots, parseMaps, readMaps, summarizeMaps } from '../../lib/proc/maps';
import { readStatus } from '../../lib/proc/status';
import { ALLOCATOR_LIBRARIES } from '../../lib/allocators/libraries';
import { skipUnlessInstalled } from '../helpers/child';
import { reapedPid, startTarget } from '../helpers/proc-child';

// Excerpt of a Node 20 process with 4 worker_threads (glibc 2.36, Linux 6.18): V8 pages, the
// brk heap, arena heaps with their ---p reserves, V8 code ranges (rw + guard + rwx), thread
// stacks behind one-page guards, libraries, the main stack and the kernel's pages.
const NODE_EXCERPT = `00400000-00d3a000 r--p 00000000 08:01 1332530                            /usr/bin/node
0565d000-05689000 rw-p 00000000 00:00 0 
07026000-072eb000 rw-p 00000000 00:00 0                                  [heap]
4c0f0c0000-4c0f100000 rw-p 00000000 00:00 0 
29d5dc000000-29d5dc040000 rw-p 00000000 00:00 0 
7f7ed0000000-7f7ed0021000 rw-p 00000000 00:00 0 
7f7ed0021000-7f7ed4000000 ---p 00000000 00:00 0 
7f7ed4000000-7f7ed4021000 rw-p 00000000 00:00 0 
7f7ed4021000-7f7ed8000000 ---p 00000000 00:00 0 
7f7ee0000000-7f7ee0002000 rw-p 00000000 00:00 0 
7f7ee0002000-7f7ee0003000 ---p 00000000 00:00 0 
7f7ee0003000-7f7ee003f000 rwxp 00000000 00:00 0 
7f7ee003f000-7f7effe40000 ---p 00000000 00:00 0 
7f7efffd2000-7f7f00000000 ---p 00000000 00:00 0 
7f7f20000000-7f7f204fb000 rw-p 00000000 00:00 0 
7f7f204fb000-7f7f24000000 ---p 00000000 00:00 0 
7f7f713bd000-7f7f713be000 ---p 00000000 00:00 0 
7f7f713be000-7f7f717be000 rw-p 00000000 00:00 0 
7f7f717be000-7f7f717bf000 ---p 00000000 00:00 0 
7f7f717bf000-7f7f71bbf000 rw-p 00000000 00:00 0 
7f7f91ffc000-7f7f91ffd000 ---p 00000000 00:00 0 
7f7f91ffd000-7f7f927fd000 rw-p 00000000 00:00 0 
7f7f90f12000-7f7f90f40000 ---p 00000000 00:00 0 
7f7f90f40000-7f7f911c0000 rw-p 00000000 00:00 0 
7f7f98697000-7f7f9869b000 rw-p 00000000 00:00 0 
7f7f9869b000-7f7f98717000 ---p 00000000 00:00 0 
7f7f98717000-7f7f98718000 ---p 00000000 00:00 0 
7f7f98718000-7f7f98f18000 rw-p 00000000 00:00 0 
7f7f98f18000-7f7f98f1c000 rw-p 00000000 00:00 0 
7f7f99000000-7f7f99028000 r--p 00000000 08:01 2622                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f7f99028000-7f7f9917d000 r-xp 00028000 08:01 2622                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f7f99200000-7f7f99210000 r-xp 00000000 08:01 2700                       /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30
7f7f9942f000-7f7f99433000 r--p 00000000 00:00 0                          [vvar]
7f7f99435000-7f7f99437000 r-xp 00000000 00:00 0                          [vdso]
7ffda6575000-7ffda6596000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`;

const KiB = 1024;
const MiB = 1024 * KiB;

t.test('parseMaps: addresses, permissions, offset, inode, path (with spaces)', async (t) => {
  const regions = parseMaps(`${NODE_EXCERPT}7f00aa000000-7f00aa001000 rw-s 00000000 00:01 77 /memfd:my buffer (deleted)\nnot a maps line\n`);
  t.equal(regions.length, 37);
  t.same(regions[2], { start: 0x07026000, end: 0x072eb000, perms: 'rw-p', offset: 0, inode: 0, path: '[heap]' });
  t.same(regions.find((r) => r.start === 0x7f7f99028000), { start: 0x7f7f99028000, end: 0x7f7f9917d000, perms: 'r-xp', offset: 0x28000, inode: 2622, path: '/usr/lib/x86_64-linux-gnu/libc.so.6' });
  t.equal(regions[regions.length - 1].path, '/memfd:my buffer (deleted)');
  t.equal(regions[regions.length - 2].end - regions[regions.length - 2].start, 4096, '[vsyscall] above 2^53 still has its size');
});

t.test('parseMaps: numbers a double cannot hold exactly: an inode is unknown (null), a line with such an address is skipped', async (t) => {
  // overlayfs with xino and large XFS volumes set an inode's high bits: the mapping is still a
  // file, and still the allocator library it names.
  const jemalloc = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
  const regions = parseMaps(
    [
      `7f7f99000000-7f7f99028000 r--p 00000000 00:2f 9223372036854775809        ${jemalloc}`,
      '7f7f99028000-7f7f99029000 rw-p 00000000 00:00 0 ',
      // 17 hex digits: past 2^64, no kernel prints it; parseInt would round the end (doubles step by 4096 there).
      '1fffffffffffff000-1fffffffffffff800 rw-p 00000000 00:00 0 ',
      // Not a multiple of the 2048 a double steps by between 2^63 and 2^64.
      'fffffffffffff001-fffffffffffff002 rw-p 00000000 00:00 0 ',
      '7f7f99029000-7f7f9902a000 rw-p 10000000000000001 00:00 0 ',
      'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]',
    ].join('\n'),
  );
  t.same(regions.map((r) => r.path), [jemalloc, '', '[vsyscall]'], 'the lines whose addresses or offset a double cannot hold are skipped');
  t.equal(regions[0].inode, null, 'an inode past 2^53 is unknown, not a neighbouring number');
  t.equal(regions[2].start, 0xffffffffff600000, 'page-aligned addresses below 2^64 are all exact doubles');
  const summary = summarizeMaps(regions);
  t.equal(summary.fileBacked.count, 1, 'an unknown inode is still a file');
  t.same(summary.allocatorLibraries, [{ name: 'jemalloc', path: jemalloc }]);
});

t.test('classifyRegions on the Node excerpt', async (t) => {
  const regions = parseMaps(NODE_EXCERPT);
  const kinds = classifyRegions(regions);
  const at = (start: number) => kinds[regions.findIndex((r) => r.start === start)];
  t.equal(at(0x07026000), 'main-heap');
  t.equal(at(0x7f7ed0000000), 'arena-heap');
  t.equal(at(0x7f7ed0021000), 'arena-reserve');
  t.equal(at(0x7f7f20000000), 'arena-heap', 'a heap grown to 5 MiB');
  t.equal(at(0x29d5dc000000), 'anonymous', 'a V8 page that happens to start on a 64 MiB boundary');
  t.equal(at(0x7f7ee0000000), 'anonymous', 'V8 code range: 64 MiB-aligned, but rw + ---p is not 64 MiB');
  t.equal(at(0x7f7ee0003000), 'anonymous', 'rwx after a guard is no stack');
  t.equal(at(0x7f7ee003f000), 'anonymous-reserve');
  t.equal(at(0x7f7f713bd000), 'stack-guard');
  t.equal(at(0x7f7f713be000), 'thread-stack');
  t.equal(at(0x7f7f717be000), 'stack-guard');
  t.equal(at(0x7f7f717bf000), 'thread-stack', 'a stack right after another stack');
  t.equal(at(0x7f7f9869b000), 'anonymous-reserve', 'a ---p too large for a guard');
  t.equal(at(0x7f7f90f40000), 'anonymous', 'V8: read-write after a 184 KiB PROT_NONE gap');
  t.equal(at(0x7f7f98718000), 'thread-stack');
  t.equal(at(0x7f7f98f18000), 'anonymous');
  t.equal(at(0x7ffda6575000), 'thread-stack', '[stack]');
  t.equal(at(0x00400000), 'file');
  t.equal(at(0x7f7f9942f000), 'kernel');
  t.equal(at(0xffffffffff600000), 'kernel');
});

t.test('summarizeMaps: counts, byte sums, libraries', async (t) => {
  const summary = summarizeMaps(parseMaps(NODE_EXCERPT));
  t.equal(summary.regions, 36);
  t.same(summary.mainHeap, { count: 1, bytes: 0x072eb000 - 0x07026000 });
  t.same(summary.glibcArenaHeaps, { count: 3, bytes: 0x21000 * 2 + 0x4fb000 });
  t.same(summary.glibcArenaReserve, { count: 3, bytes: 3 * GLIBC_HEAP_MAX_BYTES - (0x21000 * 2 + 0x4fb000) });
  t.same(summary.threadStacks, { count: 5, bytes: 2 * 4 * MiB + 2 * 8 * MiB + 0x21000 });
  t.same(summary.stackGuards, { count: 4, bytes: 4 * 4 * KiB });
  t.equal(summary.kernel.count, 3);
  t.same(summary.sharedObjects, ['/usr/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30']);
  t.same(summary.allocatorLibraries, [{ name: 'glibc', path: '/usr/lib/x86_64-linux-gnu/libc.so.6' }]);
  const slots = mapsSlots(summary);
  t.equal(slots['maps.glibcArenaHeaps'], 3);
  t.equal(slots['maps.threadStacks'], 5);
  t.equal(slots['maps.sharedObjects'], 2);
  t.ok(Object.keys(slots).every((key) => key.startsWith('maps.')) && Object.values(slots).every(Number.isFinite));
});

t.test('full arena heaps (no reserve), merged full heaps, glibc-named mappings', async (t) => {
  const text = [
    // One full 64 MiB heap; then three full heaps and a fourth heap's used part merged into one
    // 193 MiB mapping, followed by the fourth heap's 63 MiB reserve: 4 heaps.
    '7f0000000000-7f0004000000 rw-p 00000000 00:00 0 ',
    '7f0008000000-7f0014100000 rw-p 00000000 00:00 0 ',
    '7f0014100000-7f0018000000 ---p 00000000 00:00 0 ',
    // glibc >= 2.39 with glibc.mem.decorate_maps=1.
    '7f0020000000-7f0020021000 rw-p 00000000 00:00 0                          [anon: glibc: malloc arena]',
    '7f0020021000-7f0024000000 ---p 00000000 00:00 0 ',
    '7f0030000000-7f0030800000 rw-p 00000000 00:00 0                          [anon: glibc: pthread stack: 4242]',
    '7f0031000000-7f0031100000 rw-p 00000000 00:00 0                          [anon: glibc: malloc]',
    // 64 MiB-aligned but 1 GiB + : not taken for arena heaps.
    '7f0040000000-7f0084000000 rw-p 00000000 00:00 0 ',
    // An arena heap preceded by the tail of an unrelated ---p reservation.
    '7f0087ff0000-7f0088000000 ---p 00000000 00:00 0 ',
    '7f0088000000-7f0088021000 rw-p 00000000 00:00 0 ',
    '7f0088021000-7f008c000000 ---p 00000000 00:00 0 ',
  ].join('\n');
  const regions = parseMaps(text);
  const kinds = classifyRegions(regions);
  t.same(kinds, [
    'arena-heap',
    'arena-heap',
    'arena-reserve',
    'arena-heap',
    'arena-reserve',
    'thread-stack',
    'anonymous',
    'anonymous',
    'anonymous-reserve',
    'arena-heap',
    'arena-reserve',
  ]);
  const summary = summarizeMaps(regions);
  t.equal(summary.glibcArenaHeaps.count, 1 + 4 + 1 + 1);
  t.equal(summary.threadStacks.count, 1);
});

t.test('allocatorOfLibrary: the libraries each allocator ships as', async (t) => {
  const cases: [string, string | null][] = [
    ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', 'jemalloc'],
    ['/opt/app/lib/libjemalloc.so', 'jemalloc'],
    ['/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10', 'tcmalloc'],
    ['/usr/lib/libtcmalloc_and_profiler.so.4', 'tcmalloc'],
    ['/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0', 'mimalloc'],
    ['/usr/lib/libmimalloc-secure.so', 'mimalloc'],
    ['/lib/ld-musl-x86_64.so.1', 'musl'],
    ['/usr/lib/libc.musl-x86_64.so.1', 'musl'],
    ['/usr/lib/x86_64-linux-gnu/libc.so.6', 'glibc'],
    ['/lib/x86_64-linux-gnu/libc-2.31.so', 'glibc'],
    ['/usr/lib/x86_64-linux-gnu/libcrypto.so.3', null],
    ['/usr/lib/libjemalloc_helper.txt', null],
    ['/usr/bin/node', null],
  ];
  for (const [path, name] of cases) t.equal(allocatorOfLibrary(path), name, path);
  const deleted = summarizeMaps(parseMaps('7f0000000000-7f0000001000 r-xp 00000000 08:01 5 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 (deleted)\n'));
  t.same(deleted.allocatorLibraries, [{ name: 'jemalloc', path: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2' }], 'a library replaced on disk after it was loaded');
});

// A Node child whose 4 worker_threads each allocate, so glibc gives threads their own arenas.
const WORKERS = `
const { Worker } = require('node:worker_threads');
let up = 0;
for (let i = 0; i < 4; i++) {
  const worker = new Worker("const keep = []; for (let i = 0; i < 2000; i++) keep.push(Buffer.alloc(1000 + i)); require('node:worker_threads').parentPort.postMessage('up'); setInterval(() => {}, 1e6);", { eval: true });
  worker.once('message', () => { if (++up === 4) console.log('ready'); });
}
setInterval(() => {}, 1e6);
`;

async function readWorkers(t: Test, env: Record<string, string>) {
  // A clean environment: tap's coverage variables (NODE_V8_COVERAGE) start extra threads.
  const childEnv = { PATH: process.env.PATH, ...env };
  const target = await startTarget(process.execPath, ['-e', WORKERS], { env: childEnv, readyLine: 'ready' });
  t.teardown(() => target.stop());
  // Node may still start threads (libuv's pool) after 'ready': read maps between two equal
  // thread counts.
  for (let attempt = 0; ; attempt++) {
    const before = readStatus(target.pid).slots['status.Threads'];
    const summary = readMaps(target.pid);
    const threads = readStatus(target.pid).slots['status.Threads'];
    if (before === threads || attempt === 20) return { summary, threads };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('a real Node child: MALLOC_ARENA_MAX bounds the arena heaps, each thread has a stack', async (t) => {
  const capped = await readWorkers(t, { MALLOC_ARENA_MAX: '3' });
  t.equal(capped.summary.glibcArenaHeaps.count, 2, 'MALLOC_ARENA_MAX=3: main arena + 2 heaps');
  t.equal(capped.summary.threadStacks.count, capped.threads, `a stack for each of ${capped.threads} threads`);
  t.equal(capped.summary.mainHeap.count, 1);
  const single = await readWorkers(t, { MALLOC_ARENA_MAX: '1' });
  t.equal(single.summary.glibcArenaHeaps.count, 0, 'MALLOC_ARENA_MAX=1: the main arena only');
  const free = await readWorkers(t, {});
  t.ok(free.summary.glibcArenaHeaps.count >= 4, `no cap: ${free.summary.glibcArenaHeaps.count} arena heaps for ${free.threads} threads (>= one per allocating worker)`);
  t.equal(free.summary.glibcArenaReserve.bytes + free.summary.glibcArenaHeaps.bytes, free.summary.glibcArenaHeaps.count * GLIBC_HEAP_MAX_BYTES, 'heap + reserve = 64 MiB each');
  t.same(free.summary.allocatorLibraries.map((l) => l.name), ['glibc']);
});

t.test('under jemalloc (LD_PRELOAD): the library is found and glibc makes no arenas', { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
  const path = ALLOCATOR_LIBRARIES.jemalloc?.path as string;
  const { summary } = await readWorkers(t, { LD_PRELOAD: path });
  t.same(summary.allocatorLibraries.map((l) => l.name).sort(), ['glibc', 'jemalloc']);
  t.ok(summary.sharedObjects.includes(path), `maps lists ${path}`);
  t.equal(summary.glibcArenaHeaps.count, 0);
});

t.test('readMaps: a reaped pid is ESRCH, a bad pid EINVAL', async (t) => {
  const gone = await reapedPid();
  t.throws(() => readMaps(gone), { code: 'ESRCH' });
  t.throws(() => readMaps(2.5), { code: 'EINVAL' });
});

// ---- property tests (fast-check) ----
t.test('property: parseMaps, classifyRegions, summarizeMaps and mapsSlots never throw on any text', (t) => {
  const hex = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((n) => n.toString(16));
  const line = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc
      .tuple(hex, hex, fc.stringMatching(/^[-rwxsp]{4}$/), hex, fc.nat(), fc.oneof(fc.constant(''), fc.string({ maxLength: 30 }), fc.constantFrom('[heap]', '[stack]', '[anon:glibc: malloc arena]', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2')))
      .map(([s, e, p, o, inode, path]) => `${s}-${e} ${p} ${o} 00:00 ${inode} ${path}`),
  );
  fc.assert(
    fc.property(fc.array(line, { maxLength: 40 }), (lines) => {
      const regions = parseMaps(lines.join('\n'));
      const kinds = classifyRegions(regions);
      const slots = mapsSlots(summarizeMaps(regions));
      return kinds.length === regions.length && Object.values(slots).every((v) => typeof v === 'number' && !Number.isNaN(v));
    }),
    { numRuns: 300 },
  );
  t.end();
});

t.test('property: a maps line with any addresses, offset and inode up to 2^68 gives exact numbers, or is skipped', (t) => {
  const word = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 68n }), fc.bigInt({ min: 0n, max: 2n ** 52n }).map((pages) => pages * 4096n));
  fc.assert(
    fc.property(word, word, word, word, (start, end, offset, inode) => {
      const regions = parseMaps(`${start.toString(16)}-${end.toString(16)} rw-p ${offset.toString(16)} 00:00 ${inode} /x`);
      const exact = (n: bigint) => BigInt(Number(n)) === n;
      if (!exact(start) || !exact(end) || !exact(offset)) return regions.length === 0;
      const [region] = regions;
      const inodeRight = inode <= BigInt(Number.MAX_SAFE_INTEGER) ? region.inode === Number(inode) : region.inode === null;
      return regions.length === 1 && BigInt(region.start) === start && BigInt(region.end) === end && BigInt(region.offset) === offset && inodeRight;
    }),
    { numRuns: 500 },
  );
  t.end();
});

t.test('property: generated maps lines parse back to their fields (addresses below 2^53)', (t) => {
  const region = fc
    .tuple(fc.nat({ max: 2 ** 47 }), fc.nat({ max: 2 ** 30 }), fc.stringMatching(/^[-r][-w][-x][sp]$/), fc.nat({ max: 2 ** 40 }), fc.nat(), fc.stringMatching(/^(|\[heap\]|\[stack\]|\/[a-z0-9_./-]{1,30})$/))
    .map(([start, length, perms, offset, inode, path]) => ({ start, end: start + length, perms, offset, inode, path }));
  fc.assert(
    fc.property(fc.array(region, { maxLength: 20 }), (regions) => {
      const text = regions.map((r) => `${r.start.toString(16)}-${r.end.toString(16)} ${r.perms} ${r.offset.toString(16).padStart(8, '0')} fd:01 ${r.inode}${r.path === '' ? '' : `${' '.repeat(10)}${r.path}`}`).join('\n');
      t.same(parseMaps(text), regions);
    }),
    { numRuns: 200 },
  );
  t.end();
});
