import t from 'tap';
import fc from 'fast-check';
import { MAX_SAFE_KB } from '../../lib/proc/files';
import { parseStatus, readStatus } from '../../lib/proc/status';
import { reapedPid, startTarget } from '../helpers/proc-child';

// Captured from `cat /proc/self/status` on Linux 6.18 (Debian 12).
const CAT_STATUS = `Name:\tcat
Umask:\t0022
State:\tR (running)
Tgid:\t24805
Ngid:\t0
Pid:\t24805
PPid:\t24801
TracerPid:\t0
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
FDSize:\t256
Groups:\t 
VmPeak:\t    3060 kB
VmSize:\t    3060 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t    1628 kB
VmRSS:\t    1628 kB
RssAnon:\t     112 kB
RssFile:\t    1516 kB
RssShmem:\t       0 kB
VmData:\t     360 kB
VmStk:\t     132 kB
VmExe:\t      20 kB
VmLib:\t    1528 kB
VmPTE:\t      52 kB
VmSwap:\t       0 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
Threads:\t1
SigQ:\t0/96365
Cpus_allowed_list:\t0-1
voluntary_ctxt_switches:\t0
`;

// A zombie: the memory lines are gone with the mm.
const ZOMBIE_STATUS = `Name:\tsleep
State:\tZ (zombie)
Tgid:\t4242
PPid:\t4241
Uid:\t1000\t1001\t1000\t1000
Threads:\t1
`;

t.test('parseStatus: every kB line as status.<Key> in kB, Threads, identity', async (t) => {
  const status = parseStatus(CAT_STATUS);
  t.equal(status.name, 'cat');
  t.equal(status.state, 'R');
  t.equal(status.tgid, 24805);
  t.equal(status.ppid, 24801);
  t.same(status.uid, { real: 0, effective: 0 });
  t.same(status.slots, {
    'status.VmPeak': 3060,
    'status.VmSize': 3060,
    'status.VmLck': 0,
    'status.VmPin': 0,
    'status.VmHWM': 1628,
    'status.VmRSS': 1628,
    'status.RssAnon': 112,
    'status.RssFile': 1516,
    'status.RssShmem': 0,
    'status.VmData': 360,
    'status.VmStk': 132,
    'status.VmExe': 20,
    'status.VmLib': 1528,
    'status.VmPTE': 52,
    'status.VmSwap': 0,
    'status.HugetlbPages': 0,
    'status.Threads': 1,
  });
});

t.test('parseStatus: a zombie has no memory lines; odd input is skipped, not an error', async (t) => {
  const zombie = parseStatus(ZOMBIE_STATUS);
  t.equal(zombie.state, 'Z');
  t.same(zombie.uid, { real: 1000, effective: 1001 });
  t.same(zombie.slots, { 'status.Threads': 1 });
  const odd = parseStatus('garbage\n:\nVmRSS:\tlots kB\nTgid:\t-1\nUid:\tx\nThreads:\tmany\n');
  t.same(odd, { name: '', state: '', tgid: null, ppid: null, uid: null, slots: {} });
  t.same(parseStatus(''), { name: '', state: '', tgid: null, ppid: null, uid: null, slots: {} });
});

t.test('parseStatus: a figure past 2^53, or whose bytes (x 1024) would be, is unknown, never a wrong number', async (t) => {
  // 2^43 kB is 8 PiB: the first kB figure whose bytes are past Number.MAX_SAFE_INTEGER.
  const status = parseStatus(
    [
      'Name:\tbig',
      'Tgid:\t99999999999999999999',
      `PPid:\t${'9'.repeat(400)}`, // Number() of it is Infinity
      'Uid:\t99999999999999999999\t0\t0\t0',
      'VmRSS:\t99999999999999999999 kB',
      'VmSwap:\t9007199254740993 kB', // 2^53 + 1: Number() rounds it to 2^53
      'VmHWM:\t8796093022208 kB',
      'VmSize:\t8796093022207 kB',
      'Threads:\t18446744073709551615',
      '',
    ].join('\n'),
  );
  t.equal(status.tgid, null);
  t.equal(status.ppid, null);
  t.equal(status.uid, null);
  t.same(status.slots, { 'status.VmSize': 8796093022207 }, 'only the figure whose bytes are a safe integer is kept');
  t.ok(Number.isSafeInteger(status.slots['status.VmSize'] * 1024));
});

t.test('readStatus of a real child: sleep, its parent, and RSS the kernel agrees on', async (t) => {
  const target = await startTarget('sleep', ['60']);
  t.teardown(() => target.stop());
  const status = readStatus(target.pid);
  t.equal(status.name, 'sleep');
  t.equal(status.tgid, target.pid);
  t.equal(status.ppid, process.pid);
  t.equal(status.slots['status.Threads'], 1);
  t.ok(status.slots['status.VmRSS'] > 0, `VmRSS ${status.slots['status.VmRSS']} kB`);
  t.equal(status.slots['status.VmRSS'], status.slots['status.RssAnon'] + status.slots['status.RssFile'] + status.slots['status.RssShmem'], 'VmRSS = RssAnon + RssFile + RssShmem');
  t.ok(status.slots['status.VmHWM'] >= status.slots['status.VmRSS'], 'peak >= current');
});

t.test('readStatus of this process sees its threads', async (t) => {
  const status = readStatus(process.pid);
  // Node runs at least the main thread, 4 libuv workers once used, and V8 platform threads.
  t.ok(status.slots['status.Threads'] > 1, `Threads ${status.slots['status.Threads']}`);
  t.equal(status.tgid, process.pid);
});

t.test('readStatus of a reaped pid: ESRCH', async (t) => {
  const gone = await reapedPid();
  t.throws(() => readStatus(gone), { code: 'ESRCH' });
});

// ---- property tests (fast-check): any text parses without an exception; generated status text
// parses back to the values it was made from ----
t.test('property: parseStatus never throws, and every slot is a whole number of kB (bytes a safe integer) or threads', (t) => {
  // Decimal figures of any size: small ones, 16 to 23 digits (past 2^53), hundreds (Infinity).
  const digits = fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 22n }).map(String), fc.integer({ min: 300, max: 400 }).map((n) => '9'.repeat(n)));
  const line = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 })).map(([k, v]) => `${k}:${v} kB`),
    fc.tuple(fc.constantFrom('Name', 'State', 'Tgid', 'PPid', 'Uid', 'Threads', 'VmRSS'), fc.string({ maxLength: 20 })).map(([k, v]) => `${k}:\t${v}`),
    fc.tuple(fc.constantFrom('Tgid', 'PPid', 'Threads', 'VmRSS', 'VmSwap'), digits, fc.constantFrom('', ' kB')).map(([k, v, unit]) => `${k}:\t${v}${unit}`),
    fc.tuple(digits, digits).map(([real, effective]) => `Uid:\t${real}\t${effective}\t0\t0`),
  );
  const safe = (value: number | null | undefined) => value === null || value === undefined || (Number.isSafeInteger(value) && value >= 0);
  fc.assert(
    fc.property(fc.array(line, { maxLength: 30 }), fc.constantFrom('\n', '\r\n', ''), (lines, eol) => {
      const status = parseStatus(lines.join('\n') + eol);
      for (const [key, value] of Object.entries(status.slots)) {
        if (!safe(key === 'status.Threads' ? value : value * 1024)) return false;
      }
      return typeof status.name === 'string' && status.state.length <= 1 && safe(status.tgid) && safe(status.ppid) && safe(status.uid?.real) && safe(status.uid?.effective);
    }),
    { numRuns: 500 },
  );
  t.end();
});

t.test('property: generated status text parses back to its kB lines (those whose bytes are a safe integer), ids and thread count', (t) => {
  const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/).filter((k) => !['Name', 'State', 'Tgid', 'PPid', 'Uid', 'Threads'].includes(k));
  // kB figures on both sides of the largest whose bytes are safe, up to the kernel's 20 digits and past.
  const kb = fc.dictionary(key, fc.oneof(fc.bigInt({ min: 0n, max: BigInt(MAX_SAFE_KB) }), fc.bigInt({ min: BigInt(MAX_SAFE_KB) + 1n, max: 10n ** 22n })), { maxKeys: 20 });
  fc.assert(
    fc.property(kb, fc.nat(), fc.nat(), fc.nat(), fc.nat(), fc.nat({ max: 100000 }), fc.constantFrom('R', 'S', 'D', 'Z'), (fields, tgid, ppid, real, effective, threads, state) => {
      const text = [
        'Name:\tworker',
        `State:\t${state} (whatever)`,
        `Tgid:\t${tgid}`,
        `PPid:\t${ppid}`,
        `Uid:\t${real}\t${effective}\t${real}\t${real}`,
        ...Object.entries(fields).map(([k, v]) => `${k}:\t${String(v).padStart(8)} kB`),
        `Threads:\t${threads}`,
      ].join('\n');
      const status = parseStatus(`${text}\n`);
      const expected: Record<string, number> = { 'status.Threads': threads };
      for (const [k, v] of Object.entries(fields)) if (v <= BigInt(MAX_SAFE_KB)) expected[`status.${k}`] = Number(v);
      t.same(status.slots, expected);
      return status.name === 'worker' && status.state === state && status.tgid === tgid && status.ppid === ppid && status.uid?.real === real && status.uid.effective === effective;
    }),
    { numRuns: 200 },
  );
  t.end();
});
