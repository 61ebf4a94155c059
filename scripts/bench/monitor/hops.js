'use strict';
// One worker trip or two for a glibc monitor sample, side by side in one process: the census and
// the read it allows on one worker (glibcGuardedSampleAsync, what the governor does), against the
// census then the read as two trips (glibcCensusAsync, then the snapshot's sampleAsync: what it
// did before). Blocks of samples alternate, 10 ms apart as a fast monitor's are (so each sample
// pays its wake-ups, as at 1 Hz), and each block's CPU time (every thread: process.cpuUsage) is
// divided by its samples. Prints per-block figures to stderr and a JSON summary to stdout.
//   node scripts/bench/monitor/hops.js [--blocks 12] [--samples 100]
const { join } = require('node:path');
const { flagReader, median } = require('../common');
const dist = join(__dirname, '..', '..', '..', 'dist');
const { native } = require(join(dist, 'binding.js'));
const { guardedGlibcSnapshotAsync, timedSnapshotAsync } = require(join(dist, 'targets', 'self.js'));
const { allocator } = require(join(dist, 'index.js'));

const flag = flagReader(process.argv.slice(2));
const BLOCKS = flag('blocks', 12);
const SAMPLES = flag('samples', 100);
const LIMIT = 6666; // the default budget's: 1 ms at 150 ns a chunk
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const ways = {
  async oneTrip() {
    const { snapshot } = await guardedGlibcSnapshotAsync({ detail: 'summary' }, LIMIT, 2);
    if (snapshot === null) throw new Error('the census refused the read: this heap has too many free chunks for the comparison');
  },
  async twoTrips() {
    const census = await native().glibcCensusAsync(LIMIT + 1);
    if (census.listedChunks > LIMIT) throw new Error('the census refused the read: this heap has too many free chunks for the comparison');
    await timedSnapshotAsync({ detail: 'summary' });
  },
};

async function block(way) {
  const before = process.cpuUsage();
  for (let i = 0; i < SAMPLES; i++) {
    await ways[way]();
    await sleep(10);
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / SAMPLES;
}

async function main() {
  if (allocator().name !== 'glibc') throw new Error(`glibc serves malloc here only without LD_PRELOAD; found ${allocator().name}`);
  await block('oneTrip'); // warm-up: V8 compiles the paths, libuv starts its threads
  await block('twoTrips');
  const pairs = [];
  for (let b = 0; b < BLOCKS; b++) {
    const order = b % 2 === 0 ? ['oneTrip', 'twoTrips'] : ['twoTrips', 'oneTrip'];
    const result = {};
    for (const way of order) result[way] = await block(way);
    pairs.push(result);
    process.stderr.write(`block ${b + 1}/${BLOCKS}: one trip ${result.oneTrip.toFixed(1)} us, two trips ${result.twoTrips.toFixed(1)} us of CPU per sample\n`);
  }
  const summary = {
    date: new Date().toISOString(),
    blocks: BLOCKS,
    samplesPerBlock: SAMPLES,
    cpuUsPerSample: { oneTrip: median(pairs.map((p) => p.oneTrip)), twoTrips: median(pairs.map((p) => p.twoTrips)) },
    medianRatio: median(pairs.map((p) => p.oneTrip / p.twoTrips)),
  };
  console.log(JSON.stringify(summary, null, 2));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
