import t from 'tap';
import { DEFAULT_COST_BUDGET, type GovernedSample, resolveBudget, SnapshotGovernor } from '../lib/cost-budget';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from './helpers/child';
import { heapFixture } from './helpers/heap-fixture';
import { snapshot, snapshotAsync } from '../lib/targets/self';
import { native, type NativeBinding } from '../lib/binding';

type Seen = Pick<GovernedSample, 'tier' | 'offThread' | 'note' | 'predictedNs' | 'readNs' | 'census'> & { level: string; allocated: number | null; levelNote: string | null };

function seen(sample: GovernedSample): Seen {
  const { tier, offThread, note, predictedNs, readNs, census, snapshot } = sample;
  return { tier, offThread, note, predictedNs, readNs, census, level: snapshot.level, allocated: snapshot.allocatorBytes.allocated, levelNote: snapshot.levelNote };
}

/** About 100,000 free chunks that cannot coalesce: mallinfo2 walks them all (~15 ms, limits.md §1). */
const FREE_CHUNKS = 100_000;

const scenarios = {
  /**
   * glibc, fragmented: the census counts past the cap without the lock, so mallinfo2 is never
   * called; cheap tier until the next census; back to reads once the chunks are released.
   */
  async fragmented() {
    const handle = heapFixture.fragment(2 * FREE_CHUNKS, 16, 512, 2, 7);
    const governor = new SnapshotGovernor(DEFAULT_COST_BUDGET);
    const first = await governor.take(0);
    const gap1 = (first.census?.ns ?? 0) / 1e6 / DEFAULT_COST_BUDGET.dutyCycle;
    const cheap = await governor.take(1);
    const second = await governor.take(gap1 + 1); // the next census is due
    const gap2 = (second.census?.ns ?? 0) / 1e6 / DEFAULT_COST_BUDGET.dutyCycle;
    heapFixture.release(handle);
    const far = gap1 + 1 + gap2 + 1;
    const recovered = await governor.take(far);
    const due = far + governor.minIntervalMs() + 2;
    const next = await governor.take(due);
    const tooSoon = await governor.take(due + 0.001);
    return {
      first: seen(first),
      cheap: seen(cheap),
      second: seen(second),
      recovered: seen(recovered),
      next: seen(next),
      tooSoon: seen(tooSoon),
      spentNs: governor.spentNs,
    };
  },
  /** The same heap under a 40 ms cap: the walk fits, so mallinfo2 runs, and calibrates the cost per chunk. */
  async fragmentedWideCap() {
    const handle = heapFixture.fragment(2 * FREE_CHUNKS, 16, 512, 2, 7);
    const governor = new SnapshotGovernor(resolveBudget({ maxSampleMs: 40 }));
    const first = await governor.take(0);
    const second = await governor.take(governor.minIntervalMs() + 2);
    heapFixture.release(handle);
    return { first: seen(first), second: seen(second) };
  },
  /** jemalloc: its read is bounded (an epoch per arena), so it runs on the JS thread. */
  async jemalloc() {
    // A 20 ms cap: the policy is under test, not this loaded machine's speed (the first read of a
    // process also resolves the MIBs).
    snapshot(); // the first read of a process pays for loading and compiling (tens of ms under coverage)
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

  t.test('glibc with 100,000 free chunks: counted without the lock, mallinfo2 never called, cheap tier, recovery', async (t) => {
    const { value: r } = await child<Awaited<ReturnType<typeof scenarios.fragmented>>>('fragmented', 'glibc');
    const census = r.first.census;
    t.ok(census !== null, 'the first sample took a census');
    if (census === null) return;
    // limit: the chunks a 1 ms walk covers at the default 150 ns per chunk.
    t.equal(census.limit, Math.floor(1e6 / 150));
    t.equal(census.capped, true, `the census counted past the limit (${census.chunks} > ${census.limit})`);
    t.ok(census.chunks > census.limit && census.chunks <= census.limit + 1, 'and stopped there');
    t.equal(r.first.tier, 'cheap', 'so the first sample is cheap ...');
    t.equal(r.first.readNs, null, '... with no allocator read: mallinfo2 never held a lock');
    t.ok((r.first.predictedNs as number) > 1e6, `the walk it avoided would cost over 1 ms (predicted ${((r.first.predictedNs as number) / 1e6).toFixed(1)} ms)`);
    t.match(r.first.note, /more than 6666 free chunks \(counted without its locks/);
    t.match(r.first.levelNote, /mallinfo2 would hold an arena's lock over the 1 ms cap/, 'the snapshot itself says why');
    t.equal(r.first.level, 'proc-basic');
    t.equal(r.first.allocated, null, 'no allocator figures in the cheap tier');
    t.equal(r.cheap.tier, 'cheap');
    t.equal(r.cheap.census, null, 'no census before the next one is due');
    t.match(r.cheap.note, /cheap tier \(RSS \+ V8\) until the next probe/);
    t.equal(r.second.tier, 'cheap', 'the next census, when due, still counts past the limit');
    t.equal(r.second.census?.capped, true);
    t.equal(r.recovered.tier, 'allocator', 'released: the census finds few chunks and mallinfo2 runs');
    t.equal(r.recovered.census?.capped, false);
    // What stays free after the release is Node's own churn (300-1,300 chunks in runs here), far
    // under the limit the 1 ms cap allows; the fragment's 100,000 are gone.
    const left = r.recovered.census?.chunks ?? Infinity;
    t.ok(left <= (r.recovered.census?.limit ?? 0), `${left} free chunks after the release, within the limit of ${r.recovered.census?.limit}`);
    t.ok(left < FREE_CHUNKS / 10, `and under a tenth of the ${FREE_CHUNKS} before`);
    t.match(r.recovered.note, /free chunks counted first without the lock/);
    t.ok((r.recovered.allocated ?? 0) > 0);
    t.equal(r.next.tier, 'allocator', "then reads return at the duty cycle's pace");
    t.equal(r.tooSoon.tier, 'cheap');
  });

  t.test('glibc where the census is refused (seccomp): reads as before, unpredicted, and each sample says so', async (t) => {
    const binding = native() as { -readonly [K in keyof NativeBinding]: NativeBinding[K] };
    const saved = { ...binding };
    t.teardown(() => Object.assign(binding, saved));
    let censuses = 0;
    // What the worker answers when process_vm_readv is refused: the census's status, and the read
    // made blind (the real one, from the same kind of worker).
    binding.glibcGuardedSampleAsync = async (kind, flags) => {
      censuses++;
      const census = { status: -4, arenas: 0, arena: 0, ordblks: 0, smblks: 0, fordblks: 0, fsmblks: 0, keepcost: 0, listedChunks: 0, complete: false, ns: 2_000 };
      return { census, slots: await saved.sampleAsync(kind, flags) };
    };
    const governor = new SnapshotGovernor(resolveBudget({ maxSampleMs: 20 }));
    const first = await governor.take(0);
    t.equal(first.tier, 'allocator', 'the read happens');
    t.equal(first.offThread, true, 'on a worker, as every glibc read');
    t.equal(first.census, null);
    t.match(first.note, /no census of glibc's free lists \(process_vm_readv on this process was refused/);
    const second = await governor.take(governor.minIntervalMs() + 2);
    t.equal(second.tier, 'allocator');
    t.match(second.note, /no census of glibc's free lists/, 'every read says it was not predicted');
    t.equal(censuses, 1, 'a refused census is not asked again');
  });

  t.test('glibc: the census and the read it allows take one trip to a worker', async (t) => {
    const binding = native() as { -readonly [K in keyof NativeBinding]: NativeBinding[K] };
    const saved = { ...binding };
    t.teardown(() => Object.assign(binding, saved));
    const calls: string[] = [];
    for (const name of ['glibcGuardedSampleAsync', 'glibcCensusAsync', 'sampleAsync', 'glibcCensus', 'sampleInto'] as const) {
      const real = saved[name] as (...args: unknown[]) => unknown;
      (binding as Record<string, unknown>)[name] = (...args: unknown[]) => {
        calls.push(name);
        return real(...args);
      };
    }
    const governor = new SnapshotGovernor(resolveBudget({ maxSampleMs: 20 }));
    const sample = await governor.take(0);
    t.equal(sample.tier, 'allocator');
    t.equal(sample.census?.capped, false);
    t.strictSame(calls, ['glibcGuardedSampleAsync'], 'one native call, on one worker');
  });

  t.test('glibc with 100,000 free chunks under a 40 ms cap: the walk fits, mallinfo2 runs and calibrates', async (t) => {
    const { value: r } = await child<Awaited<ReturnType<typeof scenarios.fragmentedWideCap>>>('fragmentedWideCap', 'glibc');
    const first = r.first.census;
    t.ok(first !== null && !first.capped && first.chunks >= FREE_CHUNKS * 0.9, `the census counted them all (${first?.chunks})`);
    t.equal(r.first.tier, 'allocator');
    t.ok((r.first.readNs as number) > 1e6, `mallinfo2 walked them (${((r.first.readNs as number) / 1e6).toFixed(1)} ms)`);
    t.equal(first?.nsPerChunk, 150, 'the first prediction uses the default cost per chunk');
    const second = r.second.census;
    const measured = Math.min(1_000, Math.max(50, (r.first.readNs as number) / (first?.chunks ?? 1)));
    t.ok(second !== null && Math.abs((second?.nsPerChunk ?? 0) - measured) < 1e-6, `the next uses the measured one, clamped to 50-1,000 ns (${measured.toFixed(0)} ns)`);
    t.equal(second?.limit, Math.floor(40e6 / measured));
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
