import t from 'tap';
import { DEFAULT_COST_BUDGET, type GovernedSample, resolveBudget, SnapshotGovernor } from '../lib/cost-budget';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from './helpers/child';
import { heapFixture } from './helpers/heap-fixture';
import { snapshotAsync } from '../lib/targets/self';

type Seen = Pick<GovernedSample, 'tier' | 'offThread' | 'note' | 'predictedNs' | 'readNs'> & { level: string; allocated: number | null; levelNote: string | null };

function seen(sample: GovernedSample): Seen {
  const { tier, offThread, note, predictedNs, readNs, snapshot } = sample;
  return { tier, offThread, note, predictedNs, readNs, level: snapshot.level, allocated: snapshot.allocatorBytes.allocated, levelNote: snapshot.levelNote };
}

/** About 100,000 free chunks that cannot coalesce: mallinfo2 walks them all (~15 ms, limits.md §1). */
const FREE_CHUNKS = 100_000;

const scenarios = {
  /** glibc, fragmented: over the cap, cheap tier, probes backing off, back under after release. */
  async fragmented() {
    const handle = heapFixture.fragment(2 * FREE_CHUNKS, 16, 512, 2, 7);
    const governor = new SnapshotGovernor(DEFAULT_COST_BUDGET);
    const first = await governor.take(0);
    const gap1 = (first.predictedNs as number) / 1e6 / DEFAULT_COST_BUDGET.dutyCycle;
    const cheap = await governor.take(1);
    const cheapTier = governor.cheapTier;
    const second = await governor.take(gap1 + 1); // the probe is due
    const gap2 = (second.predictedNs as number) / 1e6 / DEFAULT_COST_BUDGET.dutyCycle;
    // Still over the cap: the next probe waits at least twice as long as the first gap.
    const beforeThird = await governor.take(gap1 + 1 + 2 * gap1 - 10);
    heapFixture.release(handle);
    const far = gap1 + 1 + Math.max(gap2, 2 * gap1) + 10;
    const recovered = await governor.take(far);
    const due = far + governor.minIntervalMs() + 2;
    const onThread = await governor.take(due);
    const tooSoon = await governor.take(due + 0.001);
    return {
      first: seen(first),
      cheap: seen(cheap),
      cheapTier,
      second: seen(second),
      beforeThird: seen(beforeThird),
      recovered: seen(recovered),
      onThread: seen(onThread),
      tooSoon: seen(tooSoon),
      spentNs: governor.spentNs,
    };
  },
  /** jemalloc: its read is bounded (an epoch per arena), so it runs on the JS thread. */
  async jemalloc() {
    // A 20 ms cap: the policy is under test, not this loaded machine's speed (the first read of a
    // process also resolves the MIBs).
    const governor = new SnapshotGovernor(resolveBudget({ maxSampleMs: 20 }));
    const first = seen(await governor.take(0));
    const second = seen(await governor.take(governor.minIntervalMs() + 2));
    return { first, second };
  },
};

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  const child = childOnce(__filename);

  t.test('resolveBudget fills the defaults and refuses what is out of range', async (t) => {
    t.same(resolveBudget(undefined), { dutyCycle: 0.001, maxSampleMs: 1 });
    t.same(resolveBudget({ maxSampleMs: 5 }), { dutyCycle: 0.001, maxSampleMs: 5 });
    for (const bad of [{ dutyCycle: 0 }, { dutyCycle: 0.9 }, { dutyCycle: -1 }, { maxSampleMs: 0 }, { maxSampleMs: Number.NaN }, { dutyCycle: '1%' }]) {
      t.throws(() => resolveBudget(bad as never), { code: 'EINVAL' }, JSON.stringify(bad));
    }
    t.throws(() => resolveBudget(7 as never), { code: 'EINVAL' }, 'not an object');
  });

  t.test('glibc, a healthy heap: read on a worker when due, cheap when asked too soon', async (t) => {
    // A cap of 20 ms: this test is about the policy; a loaded 2-core machine can preempt a 50 us
    // read for a millisecond, and the first read of a process pays for opening its files.
    await snapshotAsync();
    const governor = new SnapshotGovernor(resolveBudget({ maxSampleMs: 20 }));
    // This process runs glibc: its reads go to a worker thread (their cost cannot be told beforehand).
    const first = await governor.take(0);
    t.equal(first.tier, 'allocator');
    t.equal(first.offThread, true, 'glibc reads run off the JS thread');
    t.equal(first.readNs, first.predictedNs, 'the read alone, as the worker timed it');
    t.match(first.note, /worker thread/);
    t.ok((first.predictedNs as number) > 0 && (first.predictedNs as number) < 10e6, `a healthy heap reads in well under 10 ms (${first.predictedNs} ns)`);
    const due = governor.minIntervalMs() + 2;
    const second = await governor.take(due);
    t.equal(second.tier, 'allocator');
    t.equal(second.offThread, true, 'every glibc read');
    const soon = await governor.take(due + 0.5);
    t.equal(soon.tier, 'cheap', 'asked again within the duty cycle: cheap');
    t.match(soon.note, /duty cycle allows one every/);
    t.equal(soon.snapshot.allocatorBytes.allocated, null);
    t.equal(soon.readNs, null, 'no allocator read');
    t.equal(soon.snapshot.level, 'proc-basic');
    t.ok((soon.snapshot.processBytes.rss ?? 0) > 0, 'the cheap tier still has RSS');
    t.ok(soon.snapshot.v8Bytes !== null, 'and V8');
    t.ok(governor.spentNs > 0);
  });

  t.test('glibc with 100,000 free chunks: over the cap, cheap tier, backed-off probes, recovery', async (t) => {
    const { value: r } = await child<Awaited<ReturnType<typeof scenarios.fragmented>>>('fragmented', 'glibc');
    t.equal(r.first.tier, 'allocator', 'the first read still happens ...');
    t.equal(r.first.offThread, true, '... on a worker thread');
    t.ok((r.first.predictedNs as number) > 1e6, `and costs over 1 ms (${((r.first.predictedNs as number) / 1e6).toFixed(1)} ms)`);
    t.match(r.first.note, /over the 1 ms cap/);
    t.equal(r.cheapTier, true);
    t.equal(r.cheap.tier, 'cheap');
    t.equal(r.cheap.level, 'proc-basic');
    t.equal(r.cheap.allocated, null, 'no allocator figures in the cheap tier');
    t.match(r.cheap.levelNote, /cheap tier \(RSS \+ V8\) until the next probe/, 'the snapshot itself says why');
    t.equal(r.second.tier, 'allocator', 'the probe runs when due');
    t.equal(r.second.offThread, true);
    t.equal(r.beforeThird.tier, 'cheap', 'a probe still over the cap doubles the wait');
    t.equal(r.recovered.tier, 'allocator');
    t.match(r.recovered.note, /back under the 1 ms cap/, 'freed chunks coalesce: the probe says it is back');
    t.equal(r.onThread.tier, 'allocator', 'then reads return at the duty cycle\'s pace');
    t.equal(r.tooSoon.tier, 'cheap');
  });

  t.test('jemalloc: the first read is on the JS thread', { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
    const { value: r } = await child<Awaited<ReturnType<typeof scenarios.jemalloc>>>('jemalloc', 'jemalloc');
    t.equal(r.first.tier, 'allocator');
    t.equal(r.first.offThread, false);
    t.equal(r.second.offThread, false);
    t.equal(r.second.tier, 'allocator');
    t.equal(r.first.level, 'agent');
    t.ok((r.first.allocated ?? 0) > 0);
  });
}
