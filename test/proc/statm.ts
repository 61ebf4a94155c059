import t from 'tap';
import fc from 'fast-check';
import { maxSafePages, pageSizeFromAuxv, parseStatm, readStatm, systemPageSize } from '../../lib/proc/statm';
import { readStatus } from '../../lib/proc/status';
import { reapedPid, startTarget } from '../helpers/proc-child';

t.test('parseStatm: pages into slots; lib and dt (always 0) are left out', async (t) => {
  // Captured from `cat /proc/self/statm` on Linux 6.18.
  t.same(parseStatm('765 405 377 5 0 123 0\n'), {
    'statm.size': 765,
    'statm.resident': 405,
    'statm.shared': 377,
    'statm.text': 5,
    'statm.data': 123,
  });
  t.same(parseStatm('0 0 0 0 0 0 0\n')['statm.resident'], 0, 'a zombie or kernel thread');
  t.same(parseStatm(''), {});
  t.same(parseStatm('1 2 3\n'), {}, 'too few fields');
  t.same(parseStatm('1 2 3 4 5 6 x\n'), {}, 'not a number');
});

t.test('parseStatm: a count past 2^53, or whose bytes (x page size) would be, makes {} (not seven usable integers)', async (t) => {
  t.same(parseStatm('765 99999999999999999999 377 5 0 123 0\n'), {}, 'a 20-digit field');
  t.same(parseStatm(`765 405 377 5 0 ${'9'.repeat(400)} 0\n`), {}, 'a field that Number() makes Infinity');
  const page = systemPageSize();
  const most = Math.floor(Number.MAX_SAFE_INTEGER / page);
  t.same(parseStatm(`${most + 1} 405 377 5 0 123 0\n`), {}, `${most + 1} pages of ${page} bytes are past 2^53 bytes`);
  t.equal(parseStatm(`${most} 405 377 5 0 123 0\n`)['statm.size'], most, 'the largest count whose bytes are safe');
  t.equal(parseStatm(`${most + 1} 405 377 5 0 123 0\n`, 1)['statm.size'], most + 1, 'the page size is a parameter');
});

t.test('pageSizeFromAuxv: AT_PAGESZ from native-endian word pairs', async (t) => {
  const auxv64 = Buffer.from(new BigUint64Array([33n, 0x7ffc0000n, 6n, 16384n, 17n, 100n, 0n, 0n]).buffer);
  t.equal(pageSizeFromAuxv(auxv64), 16384);
  const auxv32 = Buffer.from(new Uint32Array([33, 1, 6, 4096, 0, 0]).buffer);
  t.equal(pageSizeFromAuxv(auxv32, 4), 4096);
  const noPageSize = Buffer.from(new BigUint64Array([33n, 1n, 0n, 0n, 6n, 8192n]).buffer);
  t.equal(pageSizeFromAuxv(noPageSize), null, 'entries after AT_NULL are not read');
  t.equal(pageSizeFromAuxv(Buffer.alloc(5)), null, 'shorter than one pair');
  const hugePage = Buffer.from(new BigUint64Array([6n, 2n ** 60n + 1n, 0n, 0n]).buffer);
  t.equal(pageSizeFromAuxv(hugePage), null, 'a page size past 2^53 is unknown, not rounded');
  t.equal(pageSizeFromAuxv(Buffer.from(new BigUint64Array([6n, 0n, 0n, 0n]).buffer)), null, 'nor is a page of 0 bytes one');
});

t.test('systemPageSize is this host page size, and statm x page = VmRSS', async (t) => {
  const page = systemPageSize();
  t.ok(page >= 4096 && (page & (page - 1)) === 0, `page size ${page} is a power of two >= 4096`);
  t.equal(systemPageSize(), page, 'cached');
  // sleep neither allocates nor frees: two reads agree to the page.
  const target = await startTarget('sleep', ['60']);
  t.teardown(() => target.stop());
  const statm = readStatm(target.pid);
  const status = readStatus(target.pid);
  t.equal(statm['statm.resident'] * page, status.slots['status.VmRSS'] * 1024, 'resident pages x page = VmRSS');
  t.equal(statm['statm.size'] * page, status.slots['status.VmSize'] * 1024, 'size pages x page = VmSize');
  t.equal(statm['statm.shared'] * page, (status.slots['status.RssFile'] + status.slots['status.RssShmem']) * 1024, 'shared = RssFile + RssShmem');
});

t.test('readStatm of a reaped pid: ESRCH; of a bad pid: EINVAL', async (t) => {
  const gone = await reapedPid();
  t.throws(() => readStatm(gone), { code: 'ESRCH' });
  t.throws(() => readStatm(0), { code: 'EINVAL' }, '/proc/0 does not exist, but 0 is no pid to begin with');
  t.throws(() => readStatm(Number.NaN), { code: 'EINVAL' });
});

// ---- property tests (fast-check) ----
t.test('property: parseStatm never throws; it yields {} or all five slots, page counts whose bytes are a safe integer', (t) => {
  const text = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.array(fc.oneof(fc.nat().map(String), fc.string({ maxLength: 4 }), fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 22n }).map(String), fc.integer({ min: 300, max: 400 }).map((n) => '9'.repeat(n)))), { maxLength: 9 }).map((f) => f.join(' ')),
  );
  const page = systemPageSize();
  fc.assert(
    fc.property(text, (text) => {
      const slots = parseStatm(text);
      const values = Object.values(slots);
      return (values.length === 0 || values.length === 5) && values.every((v) => Number.isSafeInteger(v * page) && v >= 0);
    }),
    { numRuns: 500 },
  );
  t.end();
});

t.test('property: seven generated page counts map to size, resident, shared, text and data; {} when one\'s bytes are past 2^53', (t) => {
  const most = BigInt(maxSafePages());
  // Mostly counts whose bytes are safe, now and then one past them (up to the kernel's 20 digits and past).
  const count = fc.oneof({ arbitrary: fc.bigInt({ min: 0n, max: most }), weight: 6 }, { arbitrary: fc.bigInt({ min: most + 1n, max: 10n ** 22n }), weight: 1 });
  fc.assert(
    fc.property(fc.array(count, { minLength: 7, maxLength: 7 }), fc.constantFrom('\n', ''), (counts, eol) => {
      const slots = parseStatm(counts.join(' ') + eol);
      const fields = counts.map(Number);
      if (counts.some((c) => c > most)) t.same(slots, {});
      else t.same(slots, { 'statm.size': fields[0], 'statm.resident': fields[1], 'statm.shared': fields[2], 'statm.text': fields[3], 'statm.data': fields[5] });
    }),
    { numRuns: 200 },
  );
  t.end();
});
