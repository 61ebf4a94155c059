import t from 'tap';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { metrics } from '@opentelemetry/api';
import { observeAllocscopeMetrics, openTelemetryName } from '../../lib/exporters/opentelemetry';
import { METRICS } from '../../lib/exporters/common';
import { monitor } from '../../lib/monitor';
import { snapshot } from '../../lib/targets/self';
import { keepAliveUntilTeardown } from '../helpers/keep-alive';

/**
 * A MeterProvider with the SDK's in-memory exporter; collect() returns what one export holds.
 * Delta temporality: a gauge no longer observed has no point (cumulative would repeat the last).
 */
function sdk() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.DELTA);
  // A long interval: exports happen only when the test flushes.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    async collect() {
      exporter.reset();
      await reader.forceFlush();
      const points = new Map<string, { unit: string; description: string; value: number; attributes: Record<string, unknown> }>();
      for (const resource of exporter.getMetrics() as ResourceMetrics[]) {
        for (const scope of resource.scopeMetrics) {
          for (const metric of scope.metrics) {
            for (const point of metric.dataPoints) {
              points.set(metric.descriptor.name, { unit: metric.descriptor.unit, description: metric.descriptor.description, value: point.value as number, attributes: point.attributes });
            }
          }
        }
      }
      return points;
    },
  };
}

keepAliveUntilTeardown(t);

t.test('observable gauges read through the SDK\'s in-memory reader', async (t) => {
  const { provider, collect } = sdk();
  const handle = observeAllocscopeMetrics({ meter: provider.getMeter('test') });
  t.equal(handle.names.length, METRICS.length);
  const points = await collect();
  const now = snapshot();
  const rss = points.get('allocscope.process.rss');
  t.equal(rss?.unit, 'By', 'UCUM bytes');
  t.same(rss?.attributes, { allocator: 'glibc', level: 'agent' });
  t.ok(Math.abs((rss?.value ?? 0) - (now.processBytes.rss ?? 0)) < 0.2 * (now.processBytes.rss ?? 1), 'this process\'s RSS');
  t.equal(points.get('allocscope.total_overhead')?.unit, '1', 'ratios are dimensionless');
  t.ok((points.get('allocscope.total_overhead')?.value ?? 0) > 1);
  t.equal(points.get('allocscope.sample.cost')?.unit, 's');
  t.ok((points.get('allocscope.allocator.allocated')?.value ?? 0) > 0);
  t.match(points.get('allocscope.allocator.allocated')?.description, /Live bytes/);
  t.notOk(points.has('allocscope.small_bin_frag'), 'no point for a figure glibc does not have');
  handle.stop();
  const after = await collect();
  t.notOk(after.has('allocscope.process.rss'), 'stop() ends the observations');
  await provider.shutdown();
});

t.test('with a monitor: its latest snapshot; the global meter by default', async (t) => {
  const { provider, collect } = sdk();
  const m = monitor({ intervalMs: 1000, verdictEvery: 0 });
  await new Promise<void>((resolve) => m.once('sample', () => resolve()));
  const handle = observeAllocscopeMetrics({ meter: provider.getMeter('test'), monitor: m, prefix: 'svc.' });
  const points = await collect();
  t.equal(points.get('svc.sample.timestamp')?.value, (m.latest?.time ?? 0) / 1000);
  handle.stop();
  m.stop();
  await provider.shutdown();

  const global = sdk();
  t.ok(metrics.setGlobalMeterProvider(global.provider), 'the test owns the global provider');
  const globalHandle = observeAllocscopeMetrics();
  t.ok((await global.collect()).has('allocscope.process.rss'), 'metrics.getMeter(\'allocscope\') of the global provider');
  globalHandle.stop();
  metrics.disable();
  await global.provider.shutdown();
});

t.test('bad input', async (t) => {
  t.throws(() => observeAllocscopeMetrics({ meter: {} as never }), { code: 'EINVAL' }, 'not a meter');
  t.throws(() => observeAllocscopeMetrics({ prefix: '9.' }), { code: 'EINVAL' }, 'bad prefix');
  t.throws(() => observeAllocscopeMetrics({ budget: { maxSampleMs: -1 } }), { code: 'EINVAL' });
  t.equal(openTelemetryName('x.', METRICS[0]), 'x.process.rss');
});
