import t from 'tap';
import { numberFlag, parseArgs } from '../../lib/cli/args';

const spec = { json: 'boolean', seconds: 'string' } as const;

t.test('flags, values, positionals and the rest after --', async (t) => {
  t.same(parseArgs(['snap', '--json', '--seconds', '3', 'x', '--', '--json', 'cmd'], spec), {
    flags: { json: true, seconds: '3' },
    positional: ['snap', 'x'],
    rest: ['--json', 'cmd'],
  });
  t.same(parseArgs(['--seconds=7'], spec).flags, { seconds: '7' });
});

t.test('every mistake is a UsageError', async (t) => {
  t.throws(() => parseArgs(['--nope'], spec), { name: 'UsageError' });
  t.throws(() => parseArgs(['--json=1'], spec), { name: 'UsageError' });
  t.throws(() => parseArgs(['--seconds'], spec), { name: 'UsageError' });
  t.throws(() => parseArgs(['--seconds', '--json'], spec), { name: 'UsageError' });
});

t.test('numberFlag bounds', async (t) => {
  t.equal(numberFlag({}, 'seconds', 8, 1, 10), 8);
  t.equal(numberFlag({ seconds: '3' }, 'seconds', 8, 1, 10), 3);
  for (const bad of ['0', '11', 'abc', '']) t.throws(() => numberFlag({ seconds: bad }, 'seconds', 8, 1, 10), { name: 'UsageError' }, bad);
});
