import t from 'tap';
import { AllocscopeError, checkInteger, checkNumber, describe } from '../lib/errors';

t.test('AllocscopeError carries a code, details and its own name', async (t) => {
  const error = new AllocscopeError('ENOCTL', 'no such mallctl', { name: 'x' });
  t.type(error, Error);
  t.equal(error.name, 'AllocscopeError');
  t.equal(error.code, 'ENOCTL');
  t.same(error.details, { name: 'x' });
  t.match(error.stack ?? '', /AllocscopeError: no such mallctl/);
});

t.test('checkNumber accepts the range and rejects everything else with EINVAL', async (t) => {
  t.equal(checkNumber('interval', 5, 0, 10), 5);
  for (const bad of [-1, 11, Number.NaN, Infinity, '5', null, undefined, {}]) {
    t.throws(() => checkNumber('interval', bad, 0, 10), { code: 'EINVAL' }, String(bad));
  }
});

t.test('checkInteger accepts whole numbers in range only', async (t) => {
  t.equal(checkInteger('samples', 5, 3, 10), 5);
  for (const bad of [2, 11, 5.5, Number.NaN, '5', null]) {
    t.throws(() => checkInteger('samples', bad, 3, 10), { code: 'EINVAL' }, String(bad));
  }
});

t.test('describe is short and safe for any value', async (t) => {
  t.equal(describe('abc'), '"abc"');
  t.equal(describe('x'.repeat(200)).length, 82);
  t.equal(describe(5n), '5n');
  t.equal(describe(null), 'null');
  t.equal(describe([1]), 'an array');
  t.equal(describe({ a: 1 }), 'an object');
});
