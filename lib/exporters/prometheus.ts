/**
 * allocscope/prometheus: allocscope's figures as gauges in a prom-client Registry, read at scrape
 * time (prom-client calls each gauge's collect() when the registry is scraped) within the cost
 * budget: one snapshot per scrape for every gauge, from a monitor if given, else the exporter's
 * own governed read (cost-budget.ts).
 *
 * Names follow Prometheus' conventions (https://prometheus.io/docs/practices/naming/): a prefix,
 * the unit as a suffix (`_bytes`, `_ratio`, `_seconds`), base units only; labels `allocator` and
 * `level` say who serves malloc and how deep the read went (a cheap-tier sample has level
 * proc-basic and no allocator series).
 */
import type * as PromClient from 'prom-client';
import { AllocscopeError, describe } from '../errors';
import { labelsOf, loadPeer, METRICS, type MetricDefinition, ScrapeSource, type SourceOptions } from './common';

export interface PrometheusOptions extends SourceOptions {
  /** The registry to register in. Default: prom-client's global `register`. */
  register?: PromClient.Registry;
  /** Prepended to every name; must match [a-zA-Z_:][a-zA-Z0-9_:]*. Default 'allocscope_'. */
  prefix?: string;
  /** The prom-client module to build gauges with, when the app's copy is not the one this package resolves. */
  promClient?: typeof PromClient;
}

export interface PrometheusHandle {
  /** The registered metric names. */
  names: string[];
  /** Removes the metrics from the registry. */
  unregister(): void;
}

/** The Prometheus name of a metric: prefix, group, field, unit. */
export function prometheusName(prefix: string, metric: MetricDefinition): string {
  return `${prefix}${metric.group === null ? '' : `${metric.group}_`}${metric.field}_${metric.unit}`;
}

/**
 * Registers allocscope's gauges. Throws AllocscopeError ENODEP when prom-client is not installed,
 * EINVAL for bad options or names already registered.
 */
export function registerAllocscopeMetrics(options: PrometheusOptions = {}): PrometheusHandle {
  const source = new ScrapeSource(options, 'registerAllocscopeMetrics options');
  const prom = options.promClient ?? loadPeer<typeof PromClient>('prom-client', 'allocscope/prometheus');
  const register = options.register ?? prom.register;
  if (typeof register !== 'object' || register === null || typeof (register as { registerMetric?: unknown }).registerMetric !== 'function') {
    throw new AllocscopeError('EINVAL', `register must be a prom-client Registry; got ${describe(register)}.`);
  }
  const prefix = options.prefix ?? 'allocscope_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new AllocscopeError('EINVAL', `prefix must match [a-zA-Z_:][a-zA-Z0-9_:]* (a Prometheus name start); got ${describe(prefix)}.`, { prefix });
  }
  const names = METRICS.map((metric) => prometheusName(prefix, metric));
  const taken = names.filter((name) => register.getSingleMetric(name) !== undefined);
  if (taken.length > 0) {
    throw new AllocscopeError('EINVAL', `${taken[0]} is already registered in this registry: call unregister() of the earlier handle, or pass another prefix.`, { names: taken });
  }
  METRICS.forEach((metric, i) => {
    // prom-client calls collect() on each scrape with the gauge as `this`; all of one scrape
    // resolve to the same snapshot (ScrapeSource).
    new prom.Gauge({
      name: names[i],
      help: metric.help,
      labelNames: ['allocator', 'level'],
      registers: [register],
      async collect(this: PromClient.Gauge<'allocator' | 'level'>) {
        this.reset();
        const snapshot = await source.read();
        if (snapshot === null) return;
        const value = metric.read(snapshot);
        if (value !== null && Number.isFinite(value)) this.set(labelsOf(snapshot), value);
      },
    });
  });
  return {
    names,
    unregister: () => {
      for (const name of names) register.removeSingleMetric(name);
    },
  };
}
