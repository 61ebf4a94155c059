import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { demoTable, DEMO_VARIANTS, runVariant } from '../../lib/cli/demo';

t.test('one variant really runs the workload and reports a snapshot taken inside it', async (t) => {
  const result = await runVariant(DEMO_VARIANTS[0], 1);
  t.equal(result.snapshot.allocator.name, 'glibc');
  t.ok(result.requests > 10, `served ${result.requests} requests`);
  // The three threads keep 20,000 cached slices of 64-1024 B each: at least 10 MiB live.
  t.ok((result.snapshot.allocatorBytes.allocated ?? 0) > 10 * 1048576, `allocated ${result.snapshot.allocatorBytes.allocated}`);
  t.match(demoTable([result]), /glibc\s+\d+/);
});

t.test('allocscope demo --json runs every installed variant (the compiled CLI, as npm run demo does)', async (t) => {
  const bin = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
  const result = spawnSync(process.execPath, [bin, 'demo', '--seconds', '1', '--json'], { encoding: 'utf8', timeout: 180_000 });
  t.equal(result.status, 0, result.stderr);
  const parsed = JSON.parse(result.stdout) as { results: Array<{ variant: { label: string }; snapshot: { allocator: { name: string } } }>; missing: string[]; failed: string[] };
  t.same(parsed.failed, []);
  t.equal(parsed.results.length + parsed.missing.length, DEMO_VARIANTS.length);
  for (const r of parsed.results) t.equal(r.snapshot.allocator.name, r.variant.label.split(' ')[0]);
});
