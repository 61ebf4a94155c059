import t from 'tap';
import fc from 'fast-check';
import {
  decideSmapsRead,
  DEFAULT_SMAPS_GATE_POLICY,
  parseSmapsRollup,
  predictSmapsRollupNs,
  readSmapsRollup,
  sharedSmapsGate,
  SmapsGate,
} from '../../lib/proc/smaps-rollup';
import { MAX_SAFE_KB } from '../../lib/proc/files';
import { runScenario, scenarioName } from '../helpers/child';
import { codeOf, reapedPid, startOtherUsersProcess, startTarget, withoutCapabilities } from '../helpers/proc-child';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

// Captured from `cat /proc/self/smaps_rollup` on Linux 6.18.
const CAT_ROLLUP = `565461926000-7ffdd0a28000 ---p 00000000 00:00 0                          [rollup]
Rss:                1632 kB
Pss:                 307 kB
Pss_Dirty:           112 kB
Pss_Anon:            112 kB
Pss_File:            195 kB
Pss_Shmem:             0 kB
Shared_Clean:       1480 kB
Shared_Dirty:          0 kB
Private_Clean:        40 kB
Private_Dirty:       112 kB
Referenced:         1632 kB
Anonymous:           112 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`;

if (scenarioName() !== undefined) {
  void runScenario({
    withoutPtrace: () => ({ code: codeOf(() => readSmapsRollup(Number(process.env.TARGET_PID), { gate: new SmapsGate({ minIntervalMs: 0 }) })) }),
  });
} else {
  t.test('parseSmapsRollup: every kB line after the header, in kB', async (t) => {
    const slots = parseSmapsRollup(CAT_ROLLUP);
    t.equal(Object.keys(slots).length, 22);
    t.equal(slots['smaps_rollup.Rss'], 1632);
    t.equal(slots['smaps_rollup.Pss'], 307);
    t.equal(slots['smaps_rollup.Pss_Anon'] + slots['smaps_rollup.Pss_File'] + slots['smaps_rollup.Pss_Shmem'], slots['smaps_rollup.Pss']);
    t.equal(slots['smaps_rollup.Private_Dirty'], 112);
    t.equal(slots['smaps_rollup.LazyFree'], 0);
    t.notOk('smaps_rollup.565461926000-7ffdd0a28000' in slots, 'the header is no slot');
    t.same(parseSmapsRollup(''), {}, 'a process without memory (kernel thread, zombie)');
  });

  t.test('parseSmapsRollup: a figure past 2^53, or whose bytes (x 1024) would be, is left out, never a wrong number', async (t) => {
    const slots = parseSmapsRollup(`${CAT_ROLLUP}`.replace('Pss:                 307 kB', 'Pss:                 99999999999999999999 kB').replace('Swap:                  0 kB', 'Swap:                  8796093022208 kB'));
    t.notOk('smaps_rollup.Pss' in slots, 'a 20-digit Pss is unknown');
    t.notOk('smaps_rollup.Swap' in slots, '2^43 kB: its bytes are past 2^53');
    t.equal(slots['smaps_rollup.Rss'], 1632, 'the other lines are read as before');
    t.equal(Object.keys(slots).length, 20);
  });

  t.test('predictSmapsRollupNs follows limits.md §4: 7 us per resident MiB, 0.2 us per VMA', async (t) => {
    t.equal(predictSmapsRollupNs(0), 20_000);
    t.equal(predictSmapsRollupNs(GiB), 20_000 + 1024 * 7_000, '1 GiB: ~7.2 ms (6.9 ms measured)');
    t.equal(predictSmapsRollupNs(183 * MiB, 60_000), 20_000 + 183 * 7_000 + 12_000_000, '60k VMAs: ~13 ms (13.7 ms measured)');
  });

  t.test('decideSmapsRead: size limit, force, interval, duty stretch', async (t) => {
    const small = 50 * MiB;
    t.match(decideSmapsRead({ rssBytes: small, msSinceLastRead: null }), { allowed: true, reason: null, retryInMs: 0, intervalMs: 10_000 });
    const soon = decideSmapsRead({ rssBytes: small, msSinceLastRead: 2_500 });
    t.match(soon, { allowed: false, retryInMs: 7_500 });
    t.match(soon.reason, /read 2\.5 s ago .* once per 10\.0 s .* next in 7\.5 s/);
    t.match(decideSmapsRead({ rssBytes: small, msSinceLastRead: 10_000 }), { allowed: true });

    const huge = 200 * GiB;
    const refused = decideSmapsRead({ rssBytes: huge, msSinceLastRead: null });
    t.match(refused, { allowed: false, retryInMs: null });
    t.match(refused.reason, /RSS 200\.0 GiB is above the 4\.0 GiB limit; .*~1434 ms/);
    t.match(decideSmapsRead({ rssBytes: huge, msSinceLastRead: null, force: true }), { allowed: true });
    // 200 GiB: ~1.43 s walk, so at 0.1% duty once per ~24 min even when forced.
    const forcedSoon = decideSmapsRead({ rssBytes: huge, msSinceLastRead: 60_000, force: true });
    t.equal(forcedSoon.allowed, false, 'force lifts the size limit, not the interval');
    t.equal(Math.round(forcedSoon.intervalMs), Math.round(predictSmapsRollupNs(huge) / 1e6 / 0.001));

    // 3 GiB is under the limit; its ~21.5 ms walk stretches the interval to ~21.5 s.
    const big = decideSmapsRead({ rssBytes: 3 * GiB, msSinceLastRead: 15_000 });
    t.equal(big.allowed, false);
    t.ok(big.intervalMs > 21_000 && big.intervalMs < 22_000, `interval ${big.intervalMs} ms`);

    t.match(decideSmapsRead({ rssBytes: null, msSinceLastRead: null }), { allowed: false, predictedNs: null, retryInMs: null });
    t.match(decideSmapsRead({ rssBytes: null, msSinceLastRead: null, force: true }), { allowed: true });
    t.match(decideSmapsRead({ rssBytes: small, msSinceLastRead: null }, { maxRssBytes: MiB, minIntervalMs: 0, maxDutyRatio: 1 }), { allowed: false });
  });

  t.test('SmapsGate remembers reads per pid; policy is checked', async (t) => {
    const gate = new SmapsGate({ minIntervalMs: 1_000 });
    t.equal(gate.policy.maxRssBytes, DEFAULT_SMAPS_GATE_POLICY.maxRssBytes, 'defaults fill the rest');
    t.equal(gate.decide(7, { rssBytes: MiB }, 0).allowed, true);
    gate.record(7, 0);
    t.equal(gate.decide(7, { rssBytes: MiB }, 500).allowed, false);
    t.equal(gate.decide(8, { rssBytes: MiB }, 500).allowed, true, 'another pid is not affected');
    t.equal(gate.decide(7, { rssBytes: MiB }, 1_000).allowed, true);
    gate.record(7, 2_000);
    gate.forget(7);
    t.equal(gate.decide(7, { rssBytes: MiB }, 2_001).allowed, true, 'forgotten');

    // Many pids: old entries are dropped once there are more than 1024.
    for (let pid = 1; pid <= 1100; pid++) gate.record(pid, 0);
    gate.record(5000, 100_000);
    t.equal(gate.decide(1, { rssBytes: MiB }, 100_001).allowed, true);
    t.equal(gate.decide(5000, { rssBytes: MiB }, 100_001).allowed, false);

    t.throws(() => new SmapsGate({ minIntervalMs: -1 }), { code: 'EINVAL' });
    t.throws(() => new SmapsGate({ maxDutyRatio: 0 }), { code: 'EINVAL' });
    t.throws(() => new SmapsGate({ maxRssBytes: Number.NaN }), { code: 'EINVAL' });
    t.throws(() => new SmapsGate(null as unknown as object), { code: 'EINVAL' });
  });

  t.test('readSmapsRollup of a real child holding 64 MiB: read once, then gated', async (t) => {
    const target = await startTarget(process.execPath, ['-e', "globalThis.b = Buffer.alloc(64 * 1024 * 1024, 1); console.log('ready'); setInterval(() => {}, 1e6)"], { readyLine: 'ready' });
    t.teardown(() => target.stop());
    const gate = new SmapsGate();
    const first = readSmapsRollup(target.pid, { gate });
    t.equal(first.decision.allowed, true);
    t.ok(first.ns > 0, `took ${first.ns} ns (predicted ${first.decision.predictedNs})`);
    const slots = first.slots as Record<string, number>;
    t.ok(slots['smaps_rollup.Anonymous'] >= 64 * 1024, `Anonymous ${slots['smaps_rollup.Anonymous']} kB holds the 64 MiB buffer`);
    t.ok(slots['smaps_rollup.Pss'] <= slots['smaps_rollup.Rss'], 'Pss <= Rss');
    t.ok(slots['smaps_rollup.Private_Dirty'] >= 64 * 1024, 'the buffer is private and dirty');

    const second = readSmapsRollup(target.pid, { gate });
    t.equal(second.slots, null, 'a second read right away is refused');
    t.equal(second.ns, 0);
    t.ok((second.decision.retryInMs ?? 0) > 9_000);

    const limited = readSmapsRollup(target.pid, { gate: new SmapsGate({ maxRssBytes: 16 * MiB }) });
    t.equal(limited.slots, null, 'above a 16 MiB limit');
    t.match(limited.decision.reason, /RSS \d+ MiB is above the 16 MiB limit/);
    const forced = readSmapsRollup(target.pid, { gate: new SmapsGate({ maxRssBytes: 16 * MiB }), force: true, rssBytes: 70 * MiB, vmaCount: 100 });
    t.not(forced.slots, null, 'forced');
    t.equal(forced.decision.predictedNs, predictSmapsRollupNs(70 * MiB, 100), 'the caller-given RSS and VMA count were used');
  });

  t.test('the shared gate is used by default', async (t) => {
    const target = await startTarget('sleep', ['60']);
    t.teardown(() => target.stop());
    t.not(readSmapsRollup(target.pid).slots, null);
    t.equal(readSmapsRollup(target.pid).slots, null, 'the shared gate saw the first read');
    sharedSmapsGate.forget(target.pid);
    t.not(readSmapsRollup(target.pid).slots, null, 'forgotten, read again');
  });

  t.test('errors: a reaped pid is ESRCH; without CAP_SYS_PTRACE, the process of another uid is EACCES', async (t) => {
    const gone = await reapedPid();
    t.throws(() => readSmapsRollup(gone, { gate: new SmapsGate() }), { code: 'ESRCH' });
    t.throws(() => readSmapsRollup(gone, { gate: new SmapsGate(), rssBytes: MiB }), { code: 'ESRCH' }, 'with the RSS given, the read itself fails');
    t.throws(() => readSmapsRollup(-3), { code: 'EINVAL' });
    const target = await startOtherUsersProcess();
    t.teardown(() => target.stop());
    t.same(await withoutCapabilities(__filename, 'withoutPtrace', { TARGET_PID: String(target.pid) }), { code: 'EACCES' });
  });

  // ---- property tests (fast-check) ----
  t.test('property: parseSmapsRollup never throws; every slot is a whole number of kB whose bytes are a safe integer', (t) => {
    const line = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([k, v]) => `${k}: ${v} kB`),
      fc.tuple(fc.stringMatching(/^\w{1,10}$/), fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 22n }).map(String), fc.integer({ min: 300, max: 400 }).map((n) => '9'.repeat(n)))).map(([k, v]) => `${k}: ${v} kB`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), (lines) =>
        Object.entries(parseSmapsRollup(lines.join('\n'))).every(([k, v]) => k.startsWith('smaps_rollup.') && Number.isSafeInteger(v * 1024) && v >= 0),
      ),
      { numRuns: 500 },
    );
    t.end();
  });

  t.test('property: generated rollup text parses back to its lines (those whose bytes are a safe integer), the header and other lines ignored', (t) => {
    const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/);
    // kB figures on both sides of the largest whose bytes are safe, up to the kernel's 20 digits and past.
    const kb = fc.oneof(fc.bigInt({ min: 0n, max: BigInt(MAX_SAFE_KB) }), fc.bigInt({ min: BigInt(MAX_SAFE_KB) + 1n, max: 10n ** 22n }));
    fc.assert(
      fc.property(fc.dictionary(key, kb, { maxKeys: 20 }), (fields) => {
        const text = ['55d0c0a3b000-7ffd4e5f0000 ---p 00000000 00:00 0                          [rollup]', ...Object.entries(fields).map(([k, v]) => `${`${k}:`.padEnd(16)}${String(v).padStart(8)} kB`), ''].join('\n');
        const expected: Record<string, number> = {};
        for (const [k, v] of Object.entries(fields)) if (v <= BigInt(MAX_SAFE_KB)) expected[`smaps_rollup.${k}`] = Number(v);
        t.same(parseSmapsRollup(text), expected);
      }),
      { numRuns: 200 },
    );
    t.end();
  });
}
