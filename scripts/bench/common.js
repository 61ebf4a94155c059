'use strict';
// What the benchmark scripts share: numeric flags, the median (the package's own, from dist/:
// one definition of it in the repository) and its bootstrap interval, and the machine's steal time.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { median } = require(join(__dirname, '..', '..', 'dist', 'stats', 'median.js'));

/** A reader of `--name N` flags from argv: flag('rounds', 5) is 5 unless --rounds is given. */
function flagReader(args) {
  return (name, fallback) => {
    const at = args.indexOf(`--${name}`);
    return at >= 0 ? Number(args[at + 1]) : fallback;
  };
}

/** Median and bootstrap 95% confidence interval of the median of `xs` (pairs resampled). */
function bootstrapMedian(xs, resamples = 10_000) {
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const medians = [];
  for (let r = 0; r < resamples; r++) {
    const sample = xs.map(() => xs[Math.floor(random() * xs.length)]);
    medians.push(median(sample));
  }
  medians.sort((a, b) => a - b);
  return { median: median(xs), low: medians[Math.floor(0.025 * resamples)], high: medians[Math.floor(0.975 * resamples)], n: xs.length };
}

/** The machine's CPU time so far and the part of it the hypervisor gave to other guests (steal),
    in ticks (/proc/stat's first line: user nice system idle iowait irq softirq steal). */
function cpuTicks() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] };
}

/** Steal as a share of all CPU time between two cpuTicks() readings, %. On this virtual machine
    the hypervisor takes the vCPUs away for milliseconds at a time: whatever runs then waits. */
function stealShare(before, after) {
  const total = after.total - before.total;
  return total > 0 ? (100 * (after.steal - before.steal)) / total : 0;
}

module.exports = { flagReader, median, bootstrapMedian, cpuTicks, stealShare };
