import t from 'tap';
import fc from 'fast-check';
import { median, midpoint } from '../../lib/stats/median';

t.test('median: the middle value, or the mean of the middle two', async (t) => {
  t.ok(Number.isNaN(median([])), 'NaN for no values');
  t.equal(median([3]), 3);
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median(new Float64Array([-1, -5, 10])), -1);
  t.equal(median([Number.MAX_VALUE, Number.MAX_VALUE]), Number.MAX_VALUE, 'no overflow to Infinity');
  t.equal(midpoint(1, 2), 1.5);
});

t.test('median does not depend on order and leaves its input alone', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 50 }), (values) => {
      const copy = [...values];
      const m = median(values);
      if (values.join() !== copy.join()) return false;
      const reversed = median([...values].reverse());
      const below = values.filter((v) => v < m).length;
      const above = values.filter((v) => v > m).length;
      return Object.is(m, reversed) && below <= values.length / 2 && above <= values.length / 2;
    }),
  );
  t.pass('checked');
});
