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

/** The definition, by a full sort: what the selection must reproduce exactly. */
function sortedMedian(values: readonly number[]): number {
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : midpoint(sorted[middle - 1], sorted[middle]);
}

t.test('median equals the sort-based definition, ties, infinities and long runs included', async (t) => {
  const value = fc.oneof(fc.double({ noNaN: true }), fc.integer({ min: -3, max: 3 }), fc.constant(0), fc.constant(-0));
  fc.assert(
    fc.property(fc.array(value, { minLength: 1, maxLength: 400 }), (values) => Object.is(median(values) + 0, sortedMedian(values) + 0)),
    { numRuns: 2000 },
  );
  const rising = Array.from({ length: 20_001 }, (_, i) => i * 3);
  t.equal(median(rising), 30_000, 'a sorted series of 20,001');
  t.equal(median([...rising].reverse()), 30_000, 'reversed');
  t.equal(median(new Array(1000).fill(7)), 7, 'all equal');
  t.ok(Number.isNaN(median([1, Number.NaN, 2])), 'NaN in, NaN out');
});
