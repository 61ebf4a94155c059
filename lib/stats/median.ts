/** The median of a list of numbers: the middle one, or the mean of the middle two. */

/** Median of `values` (not modified); NaN for an empty list. */
export function median(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return Number.NaN;
  // A Float64Array sorts numerically without a comparator, and copies in one call.
  const sorted = Float64Array.from(values).sort();
  const middle = n >> 1;
  return n % 2 === 1 ? sorted[middle] : midpoint(sorted[middle - 1], sorted[middle]);
}

/** (a + b) / 2, without overflow to Infinity near Number.MAX_VALUE. */
export function midpoint(a: number, b: number): number {
  const sum = a + b;
  // Halving first would round subnormals; halve first only when the sum overflows.
  return Number.isFinite(sum) ? sum / 2 : a / 2 + b / 2;
}
