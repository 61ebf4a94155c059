import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as api from '../lib/index';

const root = join(__dirname, '..');

t.test('the public surface', async (t) => {
  for (const name of ['snapshot', 'snapshotAsync', 'allocator', 'purge', 'diagnose', 'monitor', 'runCompare', 'loadReportInput', 'writeReport', 'renderReport']) t.type((api as Record<string, unknown>)[name], 'function', name);
  t.same(Object.keys(api.glibc).sort(), ['census', 'censusAsync', 'mallinfo2', 'mallocInfo', 'mallocInfoAsync', 'trim']);
  t.same(Object.keys(api.jemalloc).sort(), ['bins', 'purge', 'read', 'settings', 'statsJson', 'summary', 'write']);
  t.same(Object.keys(api.tcmalloc).sort(), ['property', 'releaseFreeMemory', 'statsText']);
  t.same(Object.keys(api.mimalloc).sort(), ['collect', 'processInfo']);
  t.type(api.AllocscopeError, 'function');
  for (const name of ['readProcTarget', 'inspectProcTarget', 'openProcTarget', 'ProcTarget', 'SmapsGate']) t.type((api as Record<string, unknown>)[name], 'function', name);
  t.equal(api.DEFAULT_SMAPS_GATE_POLICY.minIntervalMs, 10_000);
  t.equal(api.DEFAULT_THRESHOLDS.minGrowthBytes, 10 * 1024 * 1024);
});

t.test('usable from require and from import, by package name', async (t) => {
  // Node resolves a package's own name through its exports map (self-reference), as for a user.
  const cjs = spawnSync(process.execPath, ['-e', "const a = require('allocscope'); console.log(a.snapshot().schema, typeof a.jemalloc.read)"], { cwd: root, encoding: 'utf8' });
  const esm = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "import { snapshot, glibc } from 'allocscope'; import schema from 'allocscope/schema/snapshot.v1.json' with { type: 'json' }; console.log(snapshot().schema, typeof glibc.trim, schema.properties.schema.const)"],
    { cwd: root, encoding: 'utf8' },
  );
  t.equal(cjs.stdout.trim(), '1 function', cjs.stderr);
  const exporters = spawnSync(
    process.execPath,
    ['-e', "console.log(typeof require('allocscope/prometheus').registerAllocscopeMetrics, typeof require('allocscope/opentelemetry').observeAllocscopeMetrics)"],
    { cwd: root, encoding: 'utf8' },
  );
  t.equal(exporters.stdout.trim(), 'function function', `the exporters' subpaths: ${exporters.stderr}`);
  t.equal(esm.stdout.trim(), '1 function 1', esm.stderr);
});
