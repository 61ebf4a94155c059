/**
 * `allocscope compare [flags] -- SERVER_CMD ARGS`: the same server under each allocator variant,
 * the same load, RSS and live bytes sampled every --step requests (lib/compare/run.ts), then a
 * table, a chart of RSS against requests, and the run directory (summary.json, one NDJSON per run)
 * that `allocscope report` reads. `{port}` in the server's arguments is replaced by a free port
 * (or --url's), so a server can be told where to listen.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AllocscopeError } from '../errors';
import { parseLoad } from '../compare/load';
import { type CompareOptions, runCompare } from '../compare/run';
import type { CompareSummary, CompareVariantRun } from '../compare/summary';
import { chartSeriesOf, rssChart, summaryNotes, summaryTable } from '../compare/terminal';
import { DEFAULT_VARIANTS, parseVariants } from '../compare/variants';
import type { Snapshot } from '../snapshot';
import { freePort } from '../compare/server';
import { numberFlag, parseArgs, UsageError } from './args';
import { parseDuration } from './duration';

export const COMPARE_FLAGS = {
  allocators: 'string',
  requests: 'string',
  step: 'string',
  concurrency: 'string',
  url: 'string',
  load: 'string',
  repeat: 'string',
  out: 'string',
  duration: 'string',
  'start-timeout': 'string',
  json: 'boolean',
  quiet: 'boolean',
} as const;

function wholeFlag(flags: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const value = numberFlag(flags as Record<string, string>, name, fallback, min, max);
  if (!Number.isInteger(value)) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}; got ${JSON.stringify(flags[name])}`);
  return value;
}

/** The load URL: --url (http only), else 127.0.0.1 on `port`. */
export function parseUrl(text: string | undefined, port: number | null): URL {
  if (text === undefined) {
    if (port === null) throw new UsageError('give --url http://127.0.0.1:PORT/path (the port the server listens on), or put {port} in the server command so compare chooses one');
    return new URL(`http://127.0.0.1:${port}/`);
  }
  let url: URL;
  try {
    url = new URL(text.replace('{port}', String(port ?? 0)));
  } catch {
    throw new AllocscopeError('EINVAL', `--url must be a URL like http://127.0.0.1:8080/; got ${JSON.stringify(text)}.`, { url: text });
  }
  if (url.protocol !== 'http:') throw new AllocscopeError('EINVAL', `--url must be an http:// URL (the load generators speak plain HTTP); got ${JSON.stringify(text)}.`, { url: text });
  return url;
}

/** A default run directory name in the current directory: allocscope-compare-YYYYMMDD-HHMMSS. */
export function defaultOutDir(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `allocscope-compare-${stamp}`;
}

/** Parses compare's argv into options (a free port chosen when the command has {port}). */
export async function parseCompareArgs(argv: readonly string[]): Promise<Omit<CompareOptions, 'signal' | 'progress'> & { json: boolean; quiet: boolean }> {
  const { flags, positional, rest } = parseArgs(argv, { ...COMPARE_FLAGS });
  if (positional.length > 0) throw new UsageError(`put the server command after --, e.g. allocscope compare --url http://127.0.0.1:8080/ -- ./server; got ${positional.join(' ')} before --`);
  if (rest.length === 0) throw new UsageError('give the server command after --, e.g. allocscope compare -- ./server --port {port}');
  const requests = wholeFlag(flags, 'requests', 200_000, 1, 1_000_000_000);
  const step = wholeFlag(flags, 'step', Math.min(1000, requests), 1, requests);
  const concurrency = wholeFlag(flags, 'concurrency', 10, 1, 1000);
  const repeat = wholeFlag(flags, 'repeat', 1, 1, 100);
  const variants = parseVariants(String(flags.allocators ?? DEFAULT_VARIANTS));
  const load = parseLoad(String(flags.load ?? 'builtin'));
  const wantsPort = rest.some((a) => a.includes('{port}'));
  let port: number | null = null;
  const urlText = flags.url === undefined ? undefined : String(flags.url);
  if (wantsPort) {
    const given = urlText === undefined || urlText.includes('{port}') ? null : parseUrl(urlText, null).port;
    port = given !== null && given !== '' ? Number(given) : await freePort();
  }
  const url = parseUrl(urlText, port);
  return {
    command: rest.map((a) => a.replaceAll('{port}', String(port))),
    variants,
    requests,
    step,
    concurrency,
    url,
    load,
    repeat,
    outDir: String(flags.out ?? defaultOutDir()),
    durationMs: flags.duration === undefined ? 600_000 : parseDuration('duration', String(flags.duration), 100, 24 * 3_600_000),
    startTimeoutMs: flags['start-timeout'] === undefined ? 10_000 : parseDuration('start-timeout', String(flags['start-timeout']), 100, 600_000),
    json: flags.json === true,
    quiet: flags.quiet === true,
  };
}

/** RSS of every sample of a run, read back from its NDJSON file (null where unknown or unreadable). */
export function rssSeries(dir: string, run: CompareVariantRun): Array<number | null> {
  if (run.samplesFile === null) return [];
  try {
    return readFileSync(join(dir, run.samplesFile), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as Snapshot).processBytes.rss);
  } catch {
    return run.requestsAtSample.map(() => null);
  }
}

/** The text report of a finished (or interrupted) compare: table, chart, notes, run directory. */
export function compareText(summary: CompareSummary, dir: string, colour: boolean): string {
  const parts = [summaryTable(summary)];
  const chart = rssChart(chartSeriesOf(summary, (run) => rssSeries(dir, run)), { colour });
  if (chart !== '') parts.push(chart);
  const notes = summaryNotes(summary);
  if (notes.length > 0) parts.push(notes.join('\n'));
  parts.push(`Run directory: ${dir} (summary.json, one NDJSON of snapshots per run)`);
  return parts.join('\n\n');
}

/**
 * Runs compare with Ctrl-C (SIGINT) and SIGTERM stopping it cleanly: the current run's server
 * and load are stopped, what was collected is kept. Exit 0 when at least one run completed,
 * 1 when none did, 130 when interrupted.
 */
export async function compareWithOptions(options: CompareOptions & { json: boolean; quiet: boolean }, out: (t: string) => void, err: (t: string) => void): Promise<{ code: number; summary: CompareSummary }> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let summary: CompareSummary;
  try {
    summary = await runCompare({ ...options, signal: controller.signal, progress: options.quiet ? undefined : err });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (options.json) out(JSON.stringify({ ...summary, dir: options.outDir }, null, 2));
  else out(`\n${compareText(summary, options.outDir, process.stdout.isTTY === true && process.env.NO_COLOR === undefined)}`);
  const code = summary.endedBy === 'interrupted' ? 130 : summary.runs.some((r) => r.status === 'complete') ? 0 : 1;
  return { code, summary };
}

export async function compareCommand(argv: readonly string[], out: (t: string) => void, err: (t: string) => void): Promise<number> {
  const options = await parseCompareArgs(argv);
  return (await compareWithOptions(options, out, err)).code;
}
