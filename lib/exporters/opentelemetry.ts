/**
 * allocscope/opentelemetry: allocscope's figures as observable gauges on an @opentelemetry/api
 * Meter. One batch callback reads one snapshot per collection (from a monitor if given, else a
 * governed read of its own, cost-budget.ts) and observes every gauge from it, with the attributes
 * `allocator` and `level`. Units are UCUM as the OpenTelemetry conventions ask: By, 1, s.
 */
import type * as OtelApi from '@opentelemetry/api';
import { AllocscopeError, describe } from '../errors';
import { labelsOf, loadPeer, METRICS, type MetricDefinition, type MetricUnit, ScrapeSource, type SourceOptions } from './common';

export interface OpenTelemetryOptions extends SourceOptions {
  /** The meter to create instruments on. Default: the global MeterProvider's meter 'allocscope'. */
  meter?: OtelApi.Meter;
  /** Prepended to every instrument name. Default 'allocscope.'. */
  prefix?: string;
}

export interface OpenTelemetryHandle {
  /** The instrument names. */
  names: string[];
  /** Stops observing (removes the batch callback). */
  stop(): void;
}

const UCUM: Readonly<Record<MetricUnit, string>> = { bytes: 'By', ratio: '1', seconds: 's' };

/** The OpenTelemetry name of a metric: prefix, group, field (the unit is the instrument's). */
export function openTelemetryName(prefix: string, metric: MetricDefinition): string {
  return `${prefix}${metric.group === null ? '' : `${metric.group}.`}${metric.field}`;
}

/**
 * Creates allocscope's observable gauges. Throws AllocscopeError ENODEP when @opentelemetry/api
 * is not installed (and no meter is given), EINVAL for bad options.
 */
export function observeAllocscopeMetrics(options: OpenTelemetryOptions = {}): OpenTelemetryHandle {
  const source = new ScrapeSource(options, 'observeAllocscopeMetrics options');
  const meter = options.meter ?? loadPeer<typeof OtelApi>('@opentelemetry/api', 'allocscope/opentelemetry').metrics.getMeter('allocscope');
  if (typeof meter !== 'object' || meter === null || typeof (meter as { createObservableGauge?: unknown }).createObservableGauge !== 'function') {
    throw new AllocscopeError('EINVAL', `meter must be an OpenTelemetry Meter (from metrics.getMeter()); got ${describe(meter)}.`);
  }
  const prefix = options.prefix ?? 'allocscope.';
  // The API's instrument-name syntax: a letter, then letters, digits, _ . - /, up to 255 characters.
  if (typeof prefix !== 'string' || !/^([a-zA-Z][a-zA-Z0-9_.\-/]*)?$/.test(prefix)) {
    throw new AllocscopeError('EINVAL', `prefix must start with a letter and hold only letters, digits, _ . - /; got ${describe(prefix)}.`, { prefix });
  }
  const names = METRICS.map((metric) => openTelemetryName(prefix, metric));
  const gauges = METRICS.map((metric, i) => meter.createObservableGauge(names[i], { description: metric.help, unit: UCUM[metric.unit] }));
  const callback: OtelApi.BatchObservableCallback = async (observer) => {
    const snapshot = await source.read();
    if (snapshot === null) return;
    const attributes = labelsOf(snapshot);
    METRICS.forEach((metric, i) => {
      const value = metric.read(snapshot);
      if (value !== null && Number.isFinite(value)) observer.observe(gauges[i], value, attributes);
    });
  };
  meter.addBatchObservableCallback(callback, gauges);
  return { names, stop: () => meter.removeBatchObservableCallback(callback, gauges) };
}
