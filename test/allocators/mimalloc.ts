import t from 'tap';
import { mimalloc, mimallocMapping, mimallocRelease } from '../../lib/allocators/mimalloc';
import type { NativeMimallocProcessInfo } from '../../lib/binding';
import { AllocscopeError } from '../../lib/errors';
import { readerForRecord } from '../../lib/sample';
import { snapshot } from '../../lib/targets/self';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
import { heapFixture } from '../helpers/heap-fixture';

interface Outcome {
  ok?: boolean;
  code?: string;
  allocscopeError?: boolean;
}

function outcome(call: () => unknown): Outcome {
  try {
    call();
    return { ok: true };
  } catch (error) {
    return { code: (error as { code?: string }).code, allocscopeError: error instanceof AllocscopeError };
  }
}

const FIELDS = ['elapsed_msecs', 'user_msecs', 'system_msecs', 'current_rss', 'peak_rss', 'current_commit', 'peak_commit', 'page_faults'] as const;
const BAD_FORCE: unknown[] = ['x', 1, 0, null, {}, 'true'];

const scenarios = {
  async processInfo() {
    const first = mimalloc.processInfo();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // mimalloc commits 32 MiB up front: a heap well beyond that moves the commit.
    const handle = heapFixture.retain(256, 262144);
    const held = mimalloc.processInfo();
    // The Snapshot's mapping, with the commit read just before and after it.
    let mapped = null;
    for (let attempt = 0; attempt < 20 && mapped === null; attempt++) {
      const before = mimalloc.processInfo().current_commit;
      const snap = snapshot();
      const after = mimalloc.processInfo().current_commit;
      if (before === after) mapped = { commit: before, bytes: snap.allocatorBytes, raw: snap.raw.mimalloc, name: snap.allocator.name };
    }
    heapFixture.release(handle);
    return { first, held, mapped };
  },

  collect() {
    const handle = heapFixture.retain(256, 262144);
    heapFixture.release(handle);
    const before = mimalloc.processInfo();
    const forced = mimalloc.collect(true);
    const after = mimalloc.processInfo();
    return {
      before,
      forced,
      after,
      gentle: mimalloc.collect(),
      viaRelease: mimallocRelease(),
      bad: BAD_FORCE.map((force) => outcome(() => mimalloc.collect(force as boolean))),
      explicitFalse: outcome(() => mimalloc.collect(false)),
    };
  },
};

/** Children start together at load (independent processes); each test awaits its own. */
const child = childOnce(__filename);

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  const skip = skipUnlessInstalled('mimalloc');
  if (skip === false) for (const scenario of ['processInfo', 'collect']) void child(scenario, 'mimalloc');

  t.test('processInfo: mi_process_info fields, and the Snapshot mapping', { skip }, async (t) => {
    const { value } = await child<{
      first: NativeMimallocProcessInfo;
      held: NativeMimallocProcessInfo;
      mapped: { commit: number; bytes: Record<string, number | null>; raw: Record<string, number>; name: string } | null;
    }>('processInfo', 'mimalloc');
    const { first, held } = value;
    t.same(Object.keys(first).sort(), [...FIELDS].sort());
    for (const field of FIELDS) t.ok(Number.isSafeInteger(first[field]) && first[field] >= 0, `${field} = ${first[field]}`);
    t.ok(first.current_commit > 0 && first.peak_commit >= first.current_commit, 'peak commit >= commit > 0');
    // On Linux mi_process_info's current_rss is the commit, not RSS (metrics.md §5).
    t.equal(first.current_rss, first.current_commit, 'current_rss is current_commit on Linux');
    t.ok(first.peak_rss >= 10 * 1048576, `peak_rss ${first.peak_rss} is getrusage's ru_maxrss in bytes`);
    t.ok(held.elapsed_msecs >= first.elapsed_msecs + 50, 'elapsed_msecs runs');
    t.ok(held.current_commit - first.current_commit >= 48 * 1048576, `64 MiB of blocks grew the commit by ${held.current_commit - first.current_commit}`);
    const m = value.mapped;
    if (m === null) {
      t.fail('the commit never stood still around a snapshot in 20 tries');
      return;
    }
    t.equal(m.name, 'mimalloc');
    t.same(m.bytes, {
      allocated: null,
      active: null,
      resident: null,
      mapped: m.commit,
      retained: null,
      dirty: null,
      muzzy: null,
      metadata: null,
      threadCache: null,
      heapFree: null,
      releasable: null,
    }, 'mapped = current_commit; mimalloc 2.0 release builds keep no other figure');
    t.equal(m.raw.current_commit, m.commit);
    t.same(Object.keys(m.raw).sort(), [...FIELDS].sort());
  });

  t.test('collect: mi_collect, measured; force must be a boolean', { skip }, async (t) => {
    const { value: v } = await child<{
      before: NativeMimallocProcessInfo;
      after: NativeMimallocProcessInfo;
      forced: { allocator: string; action: string; rssBeforeBytes: number; rssAfterBytes: number; returnedBytes: number; durationNs: number; note: string };
      gentle: { action: string; returnedBytes: number; rssBeforeBytes: number; rssAfterBytes: number };
      viaRelease: { allocator: string; action: string };
      bad: Outcome[];
      explicitFalse: Outcome;
    }>('collect', 'mimalloc');
    t.equal(v.forced.allocator, 'mimalloc');
    t.equal(v.forced.action, 'mi_collect(true)');
    t.equal(v.forced.returnedBytes, v.forced.rssBeforeBytes - v.forced.rssAfterBytes);
    t.ok(v.forced.returnedBytes >= 16 * 1048576, `mi_collect(true) after freeing 64 MiB returned ${v.forced.returnedBytes}`);
    t.ok(v.after.current_commit < v.before.current_commit, `commit ${v.before.current_commit} -> ${v.after.current_commit}`);
    t.match(v.forced.note, /returned .* MiB to the kernel/);
    t.equal(v.gentle.action, 'mi_collect(false)', 'force defaults to false');
    t.equal(v.gentle.returnedBytes, v.gentle.rssBeforeBytes - v.gentle.rssAfterBytes);
    t.same([v.viaRelease.allocator, v.viaRelease.action], ['mimalloc', 'mi_collect(true)'], 'purge() of the allocator table forces');
    v.bad.forEach((o, at) => t.same(o, { code: 'EINVAL', allocscopeError: true }, `collect(${JSON.stringify(BAD_FORCE[at])})`));
    t.same(v.explicitFalse, { ok: true });
  });

  t.test('mimalloc calls in a glibc process: ENOALLOCATOR, after the argument check', async (t) => {
    t.throws(() => mimalloc.processInfo(), { code: 'ENOALLOCATOR' });
    t.throws(() => mimalloc.collect(true), { code: 'ENOALLOCATOR' });
    t.throws(() => mimallocRelease(), { code: 'ENOALLOCATOR' });
    t.throws(() => mimalloc.collect('x' as unknown as boolean), { code: 'EINVAL' });
  });

  t.test('mapping: mi_process_info -> Snapshot fields', async (t) => {
    const bytes = mimallocMapping.bytesFrom(readerForRecord({ 'mimalloc.current_commit': 33554432, 'mimalloc.current_rss': 1 }));
    t.same(bytes, {
      allocated: null,
      active: null,
      resident: null,
      mapped: 33554432,
      retained: null,
      dirty: null,
      muzzy: null,
      metadata: null,
      threadCache: null,
      heapFree: null,
      releasable: null,
    }, 'current_rss is never used: on Linux it is the commit, not RSS');
    t.equal(mimallocMapping.bytesFrom(readerForRecord({ 'mimalloc.current_rss': 1 })), null, 'no commit: no totals');
    t.same(mimallocMapping.extraRatios({} as never, {} as never), {});
    t.same([mimallocMapping.name, mimallocMapping.rawKey, mimallocMapping.slotPrefix, mimallocMapping.costClass], ['mimalloc', 'mimalloc', 'mimalloc.', 'cheap']);
  });
}
