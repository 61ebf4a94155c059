import t from 'tap';
import * as promClient from 'prom-client';
import { prometheusName, registerAllocscopeMetrics } from '../../lib/exporters/prometheus';
import { METRICS } from '../../lib/exporters/common';
import { monitor } from '../../lib/monitor';
import { snapshot } from '../../lib/targets/self';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
import { keepAliveUntilTeardown } from '../helpers/keep-alive';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format (version 0.0.4), as Prometheus parses it: HELP/TYPE and samples. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string>; help: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m !== null) {
      (m[1] === 'HELP' ? help : types).set(m[2], m[3]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not exposition format: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').split(',').filter(Boolean)) {
      const [key, quoted] = pair.split('=');
      labels[key] = JSON.parse(quoted) as string;
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types, help };
}

async function scrape(registry: promClient.Registry) {
  return parseExposition(await registry.metrics());
}

const scenarios = {
  async jemalloc() {
    const registry = new promClient.Registry();
    registerAllocscopeMetrics({ register: registry });
    return (await scrape(registry)).samples;
  },
};

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  const child = childOnce(__filename);
  keepAliveUntilTeardown(t);

  t.test('a real prom-client registry exposes every metric, with units and labels, read at scrape time', async (t) => {
    const registry = new promClient.Registry();
    const handle = registerAllocscopeMetrics({ register: registry });
    t.equal(handle.names.length, METRICS.length);
    const { samples, types, help } = await scrape(registry);
    const now = snapshot();
    for (const name of handle.names) {
      t.match(name, /^allocscope_[a-z0-9_]+_(bytes|ratio|seconds)$/, `${name}: a unit suffix`);
      t.equal(types.get(name), 'gauge', `${name} is a gauge`);
      t.ok((help.get(name) ?? '').length > 0, `${name} has help`);
    }
    const value = (name: string) => samples.find((s) => s.name === name);
    const rss = value('allocscope_process_rss_bytes');
    t.same(rss?.labels, { allocator: 'glibc', level: 'agent' }, 'allocator and level as labels');
    t.ok(Math.abs((rss?.value ?? 0) - (now.processBytes.rss ?? 0)) < 0.2 * (now.processBytes.rss ?? 1), `RSS ${rss?.value} is this process's (${now.processBytes.rss})`);
    t.ok((value('allocscope_allocator_allocated_bytes')?.value ?? 0) > 0, 'live bytes');
    t.ok((value('allocscope_total_overhead_ratio')?.value ?? 0) > 1, 'RSS / allocated');
    t.ok((value('allocscope_v8_heap_used_bytes')?.value ?? 0) > 0, 'V8 heap');
    t.equal(value('allocscope_small_bin_frag_ratio'), undefined, 'no series for a figure glibc does not have');
    t.ok(samples.every((s) => Number.isFinite(s.value)), 'finite values only');

    // Every gauge of one scrape shows one snapshot; a scrape within maxAgeMs reuses it.
    const again = await scrape(registry);
    t.equal(again.samples.find((s) => s.name === 'allocscope_sample_timestamp_seconds')?.value, value('allocscope_sample_timestamp_seconds')?.value, 'within 1 s: the same snapshot');

    t.throws(() => registerAllocscopeMetrics({ register: registry }), { code: 'EINVAL' }, 'names already registered');
    handle.unregister();
    t.equal((await scrape(registry)).samples.length, 0, 'unregister() removes them');
  });

  t.test('scrapes faster than the duty cycle allows get the cheap tier', async (t) => {
    const registry = new promClient.Registry();
    // A duty cycle of 0.0001%: after one read of ~50 us, the next is allowed only after ~50 s.
    registerAllocscopeMetrics({ register: registry, maxAgeMs: 0, prefix: 'fast_', budget: { dutyCycle: 0.000001 } });
    await scrape(registry);
    const second = await scrape(registry);
    const rss = second.samples.find((s) => s.name === 'fast_process_rss_bytes');
    t.equal(rss?.labels.level, 'proc-basic', 'RSS without the allocator read');
    t.equal(second.samples.find((s) => s.name === 'fast_allocator_allocated_bytes'), undefined, 'and no allocator series');
  });

  t.test('with a monitor, scrapes show its latest sample and read nothing themselves', async (t) => {
    const m = monitor({ intervalMs: 1000, verdictEvery: 0 });
    const registry = new promClient.Registry();
    registerAllocscopeMetrics({ register: registry, monitor: m, promClient });
    t.equal((await scrape(registry)).samples.length, 0, 'nothing before its first sample');
    await new Promise<void>((resolve) => m.once('sample', () => resolve()));
    const { samples } = await scrape(registry);
    t.equal(samples.find((s) => s.name === 'allocscope_sample_timestamp_seconds')?.value, (m.latest?.time ?? 0) / 1000);
    t.equal(samples.find((s) => s.name === 'allocscope_process_rss_bytes')?.value, m.latest?.processBytes.rss);
    m.stop();
  });

  t.test('the global registry is the default', async (t) => {
    const handle = registerAllocscopeMetrics({ prefix: 'global_' });
    t.match(await promClient.register.metrics(), /global_process_rss_bytes\{/);
    handle.unregister();
  });

  t.test('bad input', async (t) => {
    t.throws(() => registerAllocscopeMetrics({ register: {} as never }), { code: 'EINVAL' }, 'not a registry');
    t.throws(() => registerAllocscopeMetrics({ register: new promClient.Registry(), prefix: '9x' }), { code: 'EINVAL' }, 'bad prefix');
    t.throws(() => registerAllocscopeMetrics({ register: new promClient.Registry(), maxAgeMs: -5 }), { code: 'EINVAL' });
    t.equal(prometheusName('p_', METRICS[0]), 'p_process_rss_bytes');
  });

  t.test('under jemalloc the labels say so and jemalloc figures appear', { skip: skipUnlessInstalled('jemalloc') }, async (t) => {
    const { value: samples } = await child<Sample[]>('jemalloc', 'jemalloc');
    const active = samples.find((s) => s.name === 'allocscope_allocator_active_bytes');
    t.same(active?.labels, { allocator: 'jemalloc', level: 'agent' });
    t.ok((active?.value ?? 0) > 0);
    t.ok((samples.find((s) => s.name === 'allocscope_external_frag_ratio')?.value ?? 0) >= 1, 'active / allocated');
  });
}
