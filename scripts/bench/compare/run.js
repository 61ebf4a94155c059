#!/usr/bin/env node
// compare's own overhead (issue 5 "Benchmark"), in one run: the wall time of an `allocscope
// compare` run (the compiled CLI, as a user runs it: node start, server starts and stops, port
// waits, the agent preloaded, a snapshot every --step requests, NDJSON and summary writes) against
// the sum of the load phases of the same servers driven directly by the same load generator
// (builtinLoad, no agent, no sampling, the server already listening). Rounds alternate the two
// so the noise of this shared machine falls on both sides; medians and ratios are reported.
//   node scripts/bench/compare/run.js [--rounds 5] [--requests 20000] [--step 1000] [--json]
'use strict';
const { flagReader, median } = require('../common');
const { spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir, cpus, loadavg } = require('node:os');
const { join } = require('node:path');
const root = join(__dirname, '..', '..', '..');
const { parseVariants } = require(join(root, 'dist', 'compare', 'variants.js'));
const { allocatorInstalled } = require(join(root, 'dist', 'allocators', 'libraries.js'));
const { demoServerPath } = require(join(root, 'dist', 'cli', 'demo.js'));

const args = process.argv.slice(2);
const flag = flagReader(args);
const ROUNDS = flag('rounds', 5);
const REQUESTS = flag('requests', 20000);
const STEP = flag('step', 1000);
const CONCURRENCY = 10;
const VARIANTS = parseVariants('glibc,glibc:MALLOC_ARENA_MAX=2,jemalloc').filter((v) => allocatorInstalled(v.allocator));
const SERVER = [demoServerPath(), '--threads', '4'];

/** One compare run of every variant through the compiled CLI; wall time in ms. */
function compareRun() {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-bench-compare-'));
  const argv = [join(root, 'dist', 'cli', 'main.js'), 'compare', '--allocators', VARIANTS.map((v) => v.label).join(','), '--requests', String(REQUESTS), '--step', String(STEP), '--concurrency', String(CONCURRENCY), '--out', join(dir, 'run'), '--json', '--quiet', '--', ...SERVER, '--port', '{port}'];
  const started = performance.now();
  const result = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 600_000 });
  const wallMs = performance.now() - started;
  if (result.status !== 0) throw new Error(`compare failed: ${result.stderr}`);
  const summary = JSON.parse(result.stdout);
  rmSync(dir, { recursive: true, force: true });
  const incomplete = summary.runs.filter((r) => r.status !== 'complete');
  if (incomplete.length > 0) throw new Error(`compare runs not complete: ${JSON.stringify(incomplete.map((r) => [r.label, r.error]))}`);
  return { wallMs, loadMs: summary.runs.reduce((sum, r) => sum + r.loadMs, 0), samples: summary.runs.reduce((sum, r) => sum + r.requestsAtSample.length, 0) };
}

/**
 * The same servers (allocator preloaded, no agent), each started untimed and driven by builtinLoad
 * in a fresh Node process (direct-load.js), as compare's own load runs in a fresh process.
 */
function directRun() {
  let loadMs = 0;
  for (const variant of VARIANTS) {
    const result = spawnSync(process.execPath, [join(__dirname, 'direct-load.js'), variant.label, String(REQUESTS), String(STEP), String(CONCURRENCY), '--', ...SERVER, '--port', '{port}'], { encoding: 'utf8', timeout: 600_000 });
    if (result.status !== 0) throw new Error(`direct load under ${variant.label} failed: ${result.stderr}`);
    loadMs += JSON.parse(result.stdout).loadMs;
  }
  return { loadMs };
}

async function main() {
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which side goes first, so a drift of the machine's load falls on both.
    let compare;
    let direct;
    if (round % 2 === 0) {
      compare = compareRun();
      direct = directRun();
    } else {
      direct = directRun();
      compare = compareRun();
    }
    const ratio = compare.wallMs / direct.loadMs;
    rounds.push({ compareWallMs: compare.wallMs, compareLoadMs: compare.loadMs, directLoadMs: direct.loadMs, samples: compare.samples, ratio, loadRatio: compare.loadMs / direct.loadMs, outsideLoadMs: compare.wallMs - compare.loadMs });
    process.stderr.write(`round ${round + 1}/${ROUNDS}: compare ${(compare.wallMs / 1000).toFixed(2)} s wall (load phases ${(compare.loadMs / 1000).toFixed(2)} s, ${compare.samples} samples), direct load phases ${(direct.loadMs / 1000).toFixed(2)} s: ${ratio.toFixed(3)}x (load average ${loadavg()[0].toFixed(1)})\n`);
  }
  const ratio = median(rounds.map((r) => r.ratio));
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
    variants: VARIANTS.map((v) => v.label),
    requests: REQUESTS,
    step: STEP,
    concurrency: CONCURRENCY,
    rounds,
    medianCompareWallMs: median(rounds.map((r) => r.compareWallMs)),
    medianDirectLoadMs: median(rounds.map((r) => r.directLoadMs)),
    medianRatio: ratio,
    medianLoadPhaseRatio: median(rounds.map((r) => r.loadRatio)),
    /** compare's wall time outside its load phases (node start, server starts and stops, port waits, writes). */
    medianOutsideLoadMs: median(rounds.map((r) => r.outsideLoadMs)),
    overheadPercent: (ratio - 1) * 100,
    goalMet: ratio <= 1.05,
  };
  if (args.includes('--json')) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`| variants | requests x step | rounds | compare wall (median) | direct load phases (median) | ratio (median of rounds) | compare load phases / direct | compare outside its load phases | goal <= 1.05 |`);
  console.log(`|---|---|---:|---:|---:|---:|---:|---:|---|`);
  console.log(
    `| ${result.variants.join(', ')} | ${REQUESTS} x ${STEP} | ${ROUNDS} | ${(result.medianCompareWallMs / 1000).toFixed(2)} s | ${(result.medianDirectLoadMs / 1000).toFixed(2)} s | ${ratio.toFixed(3)}x (${result.overheadPercent >= 0 ? '+' : ''}${result.overheadPercent.toFixed(1)}%) | ${result.medianLoadPhaseRatio.toFixed(3)}x | ${(result.medianOutsideLoadMs / 1000).toFixed(2)} s | ${result.goalMet ? 'met' : '**not met**'} |`,
  );
  console.log(`per round: ${rounds.map((r) => r.ratio.toFixed(3)).join(', ')}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
