import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import schema from '../../schema/snapshot.v1.json';
import { main } from '../../lib/cli/main';

const bin = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, (s) => (out += `${s}\n`), (s) => (err += `${s}\n`));
  return { code, out, err };
}

t.test('snapshot prints a table, and --json a schema-valid Snapshot', async (t) => {
  const table = await run(['snapshot']);
  t.equal(table.code, 0);
  t.match(table.out, /malloc is glibc/);
  t.match(table.out, /totalOverhead \(rss\/allocated\)/);
  const json = await run(['snapshot', '--json', '--full']);
  t.equal(json.code, 0);
  const parsed = JSON.parse(json.out);
  t.ok(new Ajv2020().validate(schema, parsed));
  t.not(parsed.processBytes.rssFile, null, '--full reads /proc/self/status');
});

t.test('usage errors exit 2, unknown commands too', async (t) => {
  t.equal((await run(['snapshot', '--bogus'])).code, 2);
  t.equal((await run(['demo', '--seconds', '0'])).code, 2);
  t.equal((await run(['frobnicate'])).code, 2);
  t.equal((await run([])).code, 2);
  const help = await run(['help']);
  t.equal(help.code, 0);
  t.match(help.out, /snapshot/);
});

t.test('the installed bin runs as a program (npx allocscope snapshot --json)', async (t) => {
  const result = spawnSync(process.execPath, [bin, 'snapshot', '--json'], { encoding: 'utf8' });
  t.equal(result.status, 0, result.stderr);
  t.equal(JSON.parse(result.stdout).schema, 1);
  const bad = spawnSync(process.execPath, [bin, 'snapshot', '--nope'], { encoding: 'utf8' });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown flag --nope/);
});
