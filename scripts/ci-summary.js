#!/usr/bin/env node
// Sums tap's own closing results ("# { total: N, pass: N, fail: N, ... }") over the given logs
// and prints "N passed, N failed". Exits 1 when a log has no result (an empty run is a failure),
// anything failed, or anything was skipped (counted as failed).
'use strict';
const { readFileSync } = require('node:fs');

let passed = 0;
let failed = 0;
let missing = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n').filter((l) => /^# \{ total: \d+/.test(l));
  if (lines.length === 0) {
    missing++;
    continue;
  }
  const last = lines[lines.length - 1];
  const field = (name) => Number((last.match(new RegExp(`${name}: (\\d+)`)) || [0, 0])[1]);
  passed += field('pass');
  failed += field('fail');
  // CI has every package and runs as root: a test that skipped there hid a path CI can run.
  const skipped = field('skip');
  if (skipped > 0) console.log(`${file}: ${skipped} skipped; CI must run every test (each skip names what it lacks)`);
  failed += skipped;
}
failed += missing;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
