/**
 * `allocscope demo`: the same workload (demo-workload.ts) under every allocator installed here and
 * under tuned glibc (MALLOC_ARENA_MAX=2), one child process each, then one table. The difference it
 * shows is measured on this machine, not scripted. A command for any server under HTTP load (`compare`) is planned and does the
 * same for any server under HTTP load.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ALLOCATOR_LIBRARIES, allocatorInstalled } from '../allocators/libraries';
import type { AllocatorName, Snapshot } from '../snapshot';
import { formatBytes, formatRatio, formatTable } from '../report/format';
import { numberFlag, parseArgs } from './args';

export interface DemoVariant {
  label: string;
  allocator: AllocatorName;
  env: Record<string, string>;
}

export const DEMO_VARIANTS: readonly DemoVariant[] = [
  { label: 'glibc', allocator: 'glibc', env: {} },
  { label: 'glibc MALLOC_ARENA_MAX=2', allocator: 'glibc', env: { MALLOC_ARENA_MAX: '2' } },
  { label: 'jemalloc', allocator: 'jemalloc', env: {} },
  { label: 'tcmalloc', allocator: 'tcmalloc', env: {} },
  { label: 'mimalloc', allocator: 'mimalloc', env: {} },
];

export interface DemoResult {
  variant: DemoVariant;
  requests: number;
  snapshot: Snapshot;
}

/** Runs the workload under one variant; rejects with the child's stderr when it fails. */
export function runVariant(variant: DemoVariant, seconds: number): Promise<DemoResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...variant.env };
  delete env.LD_PRELOAD;
  const library = ALLOCATOR_LIBRARIES[variant.allocator];
  if (library !== undefined) env.LD_PRELOAD = library.path;
  // Beside this file: demo-workload.js when compiled, demo-workload.ts under a TypeScript loader
  // (then the loader's flags, in process.execArgv, are passed on).
  const compiled = __filename.endsWith('.js');
  const script = join(__dirname, compiled ? 'demo-workload.js' : 'demo-workload.ts');
  const nodeArgs = [...(compiled ? [] : process.execArgv), '--expose-gc', script, String(seconds)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, nodeArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      try {
        const parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '') as { requests: number; snapshot: Snapshot };
        resolve({ variant, requests: parsed.requests, snapshot: parsed.snapshot });
      } catch {
        reject(new Error(`${variant.label}: the workload ended (exit ${code}, signal ${signal}) without a result: ${stderr.trim().slice(0, 500)}`));
      }
    });
  });
}

export function demoTable(results: readonly DemoResult[]): string {
  const rows = results.map(({ variant, requests, snapshot: s }) => [
    variant.label,
    String(requests),
    formatBytes(s.processBytes.rss),
    formatBytes(s.processBytes.peakRss),
    formatBytes(s.allocatorBytes.allocated),
    formatBytes(s.allocatorBytes.heapFree ?? s.allocatorBytes.dirty),
    formatRatio(s.ratios.totalOverhead),
    formatRatio(s.ratios.externalFrag ?? s.ratios.arenaFree),
  ]);
  return formatTable(['variant', 'requests', 'RSS at end', 'peak RSS', 'allocated', 'free held', 'rss/allocated', 'frag'], rows);
}

export async function demoCommand(argv: readonly string[], out: (text: string) => void): Promise<number> {
  const { flags } = parseArgs(argv, { seconds: 'string', json: 'boolean' });
  const seconds = numberFlag(flags, 'seconds', 8, 1, 600);
  const results: DemoResult[] = [];
  const missing: string[] = [];
  const failed: string[] = [];
  for (const variant of DEMO_VARIANTS) {
    if (!allocatorInstalled(variant.allocator)) {
      missing.push(`${variant.label}: apt-get install ${ALLOCATOR_LIBRARIES[variant.allocator]?.debianPackage}`);
      continue;
    }
    if (flags.json !== true) out(`running ${variant.label} for ${seconds} s ...`);
    try {
      results.push(await runVariant(variant, seconds));
    } catch (error) {
      // One variant failing must not cost the others their run.
      failed.push((error as Error).message);
    }
  }
  if (flags.json === true) {
    out(JSON.stringify({ seconds, results, missing, failed }, null, 2));
    return results.length > 0 ? 0 : 1;
  }
  if (results.length === 0) {
    for (const line of failed) out(`failed: ${line}`);
    return 1;
  }
  out(`\nThe same workload (3 threads, heavy-tailed temporaries, a long-lived cache) for ${seconds} s each:\n`);
  out(demoTable(results));
  const rss = results.map((r) => r.snapshot.processBytes.rss ?? 0);
  const best = results[rss.indexOf(Math.min(...rss))];
  const glibcRss = results.find((r) => r.variant.label === 'glibc')?.snapshot.processBytes.rss ?? 0;
  out(
    `\nLowest RSS at the end: ${best.variant.label} (${formatBytes(best.snapshot.processBytes.rss)}, ` +
      `${((1 - (best.snapshot.processBytes.rss ?? 0) / glibcRss) * 100).toFixed(0)}% below plain glibc).`,
  );
  for (const line of failed) out(`failed: ${line}`);
  for (const line of missing) out(`not run: ${line}`);
  return 0;
}
