import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { monitor, type SampleEvent, type ThresholdEvent } from '../lib/monitor';
import type { Snapshot } from '../lib/snapshot';
import type { Verdict } from '../lib/verdict';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from './helpers/child';
import { heapFixture } from './helpers/heap-fixture';
import { keepAliveUntilTeardown } from './helpers/keep-alive';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `done()` or `ms` pass; a ref'd timer keeps the test alive (the monitor's does not). */
async function until(done: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await sleep(10);
}

const scenarios = {
  /** glibc with ~100,000 free chunks: the monitor keeps its pace on the cheap tier. */
  async fragmented() {
    const handle = heapFixture.fragment(200_000, 16, 512, 2, 11);
    const events: Array<Pick<SampleEvent, 'tier' | 'offThread' | 'nextIntervalMs' | 'readNs' | 'census'>> = [];
    const m = monitor({ intervalMs: 20, verdictEvery: 0 });
    m.on('sample', (e) => events.push({ tier: e.tier, offThread: e.offThread, nextIntervalMs: e.nextIntervalMs, readNs: e.readNs, census: e.census }));
    await until(() => events.length >= 30, 10_000);
    m.stop();
    heapFixture.release(handle);
    return { events, stats: m.stats() };
  },
  async jemalloc() {
    const m = monitor({ intervalMs: 20, verdictEvery: 0 });
    const samples: SampleEvent[] = [];
    m.on('sample', (e) => samples.push(e));
    await until(() => samples.length >= 5, 10_000);
    m.stop();
    return { tiers: samples.map((e) => e.tier), offThread: samples.map((e) => e.offThread), allocator: samples[0]?.snapshot.allocator.name };
  },
};

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  const child = childOnce(__filename);
  keepAliveUntilTeardown(t);

  t.test('bad options are refused with EINVAL', async (t) => {
    const bad: unknown[] = [
      'fast',
      { intervalMs: -1 },
      { intervalMs: 5 },
      { historySize: 3 },
      { historySize: 10.5 },
      { verdictEvery: -1 },
      { detail: 'everything' },
      { budget: { dutyCycle: 2 } },
      { budget: { maxSampleMs: 0 } },
      { thresholds: { rss: 1 } },
      { thresholds: { rssBytes: -1 } },
      { thresholds: 'high' },
      { diagnose: { minSamples: 0 } },
    ];
    for (const options of bad) t.throws(() => monitor(options as never), { code: 'EINVAL' }, JSON.stringify(options));
  });

  t.test('samples on its own, keeps a bounded history, emits samples, thresholds and verdicts', async (t) => {
    const samples: SampleEvent[] = [];
    const thresholds: ThresholdEvent[] = [];
    const verdicts: Verdict[] = [];
    const m = monitor({ intervalMs: 20, historySize: 10, verdictEvery: 5, thresholds: { rssBytes: 1, allocatedBytes: 80 * 1024 * 1024 } });
    m.on('sample', (e) => samples.push(e));
    m.on('threshold', (e) => thresholds.push(e));
    m.on('verdict', (v) => verdicts.push(v));
    await until(() => samples.length >= 12, 10_000);
    t.ok(samples.length >= 12, `${samples.length} samples`);
    t.equal(m.history().length, 10, 'history holds historySize snapshots');
    const history = m.history();
    t.ok(history.every((s, i) => i === 0 || s.monotonicNs > history[i - 1].monotonicNs), 'oldest first');
    t.equal(m.latest, history[history.length - 1]);
    t.equal(history[history.length - 1], samples[samples.length - 1].snapshot, 'the latest sample is the newest in history');
    t.ok(verdicts.length >= 1, 'a verdict every 5 samples');
    t.equal(verdicts[0].kind, 'insufficient-data', 'a window of 0.1 s cannot tell');
    t.equal(m.verdict, verdicts[verdicts.length - 1]);
    t.equal(thresholds.filter((e) => e.name === 'rssBytes').length, 1, 'RSS above 1 byte: one event per crossing, not one per sample');
    t.equal(thresholds[0].limit, 1);
    t.ok(thresholds[0].value > 1);

    // Live bytes cross 80 MiB above the baseline twice: retained, released, retained again.
    const base = m.latest?.allocatorBytes.allocated ?? 0;
    const crossings = () => thresholds.filter((e) => e.name === 'allocatedBytes').length;
    t.equal(crossings(), base > 80 * 1024 * 1024 ? 1 : 0);
    const first = heapFixture.retain(100, 1024 * 1024);
    await until(() => crossings() >= 1, 10_000);
    heapFixture.release(first);
    const afterRelease = samples.length;
    await until(() => samples.length >= afterRelease + 3, 10_000);
    const second = heapFixture.retain(100, 1024 * 1024);
    await until(() => crossings() >= 2, 10_000);
    heapFixture.release(second);
    t.equal(crossings(), 2, 'crossed, re-armed below the limit, crossed again');
    const stats = m.stats();
    t.equal(stats.samples, samples.length);
    t.ok(stats.verdicts >= 1);
    t.ok(stats.spentNs > 0 && stats.dutyCycle > 0);
    t.equal(stats.lastError, null);
    m.stop();
    const count = samples.length;
    await sleep(100);
    t.equal(samples.length, count, 'no sample after stop()');
    t.equal(m.isStopped, true);
    m.stop(); // idempotent
  });

  t.test('an async iterator of snapshots; leaving the loop ends only that iterator', async (t) => {
    const m = monitor({ intervalMs: 15, verdictEvery: 0 });
    const seen: Snapshot[] = [];
    for await (const s of m) {
      seen.push(s);
      if (seen.length === 4) break;
    }
    t.equal(seen.length, 4);
    t.ok(seen.every((s, i) => i === 0 || s.monotonicNs > seen[i - 1].monotonicNs), 'in order');
    t.equal(m.isStopped, false, 'the monitor goes on');
    const iterator = m[Symbol.asyncIterator]();
    const pending = iterator.next();
    const next = await pending;
    t.equal(next.done, false);
    const waiting = iterator.next();
    m.stop();
    t.same(await waiting, { value: undefined, done: true }, 'stop() ends a waiting iterator');
    t.same(await m[Symbol.asyncIterator]().next(), { value: undefined, done: true }, 'a stopped monitor iterates nothing');
  });

  t.test('a slow consumer queues at most historySize snapshots', async (t) => {
    const m = monitor({ intervalMs: 10, historySize: 10, verdictEvery: 0 });
    const iterator = m[Symbol.asyncIterator]();
    let samples = 0;
    m.on('sample', () => samples++);
    await until(() => samples >= 15, 10_000);
    m.stop();
    let queued = 0;
    while (!(await iterator.next()).done) queued++;
    t.equal(queued, 10, `${samples} samples, 10 kept for the iterator`);
  });

  t.test('the duty cycle stretches the interval', async (t) => {
    // 0.001% of wall time: a read of ~10 us or more may happen once a second at most.
    const m = monitor({ intervalMs: 10, verdictEvery: 0, budget: { dutyCycle: 0.00001 } });
    const events: SampleEvent[] = [];
    m.on('sample', (e) => events.push(e));
    await until(() => events.length >= 2, 10_000);
    m.stop();
    const stretched = events.find((e) => e.tier === 'allocator') ?? events[0];
    t.ok(stretched.nextIntervalMs >= 500, `next sample in ${stretched.nextIntervalMs.toFixed(0)} ms, not 10`);
  });

  t.test('the timer never keeps a process alive', async (t) => {
    const started = Date.now();
    const result = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const proc = spawn(process.execPath, [...process.execArgv, join(__dirname, 'fixtures', 'monitor-alone.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      proc.stdout.on('data', (chunk) => (out += chunk));
      proc.on('error', reject);
      proc.on('close', (code) => resolve({ code, out }));
    });
    t.equal(result.code, 0);
    t.match(result.out, /started/);
    t.ok(Date.now() - started < 60_000, 'it exited by itself');
  });

  t.test('glibc with 100,000 free chunks, monitor started late: mallinfo2 never called, the cheap tier at full pace', async (t) => {
    const { value: r } = await child<Awaited<ReturnType<typeof scenarios.fragmented>>>('fragmented', 'glibc');
    t.ok(r.events.length >= 30);
    t.equal(r.events[0].census?.capped, true, 'the first sample counted the free chunks without the lock, past the limit');
    t.equal(r.stats.offThreadSamples, 0, 'no allocator read at all: mallinfo2 would have walked ~100,000 chunks holding the lock');
    t.ok(r.events.every((e) => e.readNs === null), 'every sample without an allocator read');
    t.equal(r.stats.cheapSamples, r.events.length, 'every sample is cheap');
    t.ok(r.events.every((e) => e.nextIntervalMs === 20), 'and the pace is kept');
    t.equal(r.events.filter((e) => e.census !== null).length, 1, 'one census in the run: the next is seconds away (its cost / the 0.1% duty cycle)');
  });

  t.test('jemalloc: reads on the JS thread from the first sample', { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
    const { value: r } = await child<Awaited<ReturnType<typeof scenarios.jemalloc>>>('jemalloc', 'jemalloc');
    t.equal(r.allocator, 'jemalloc');
    t.equal(r.offThread[0], false);
    t.ok(r.tiers.includes('allocator'));
  });
}
