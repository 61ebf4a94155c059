/** The median of a list of numbers: the middle one, or the mean of the middle two. */

/**
 * Rearranges `a` so that a[k] holds the value a full sort would put there, everything before it
 * is <= a[k] and everything after >= a[k] (Hoare's FIND, CACM 4(7):321, 1961, with a
 * median-of-three pivot). O(n) on average against the O(n log n) of a sort: Theil-Sen takes the
 * median of up to 20,000 pairwise slopes per series, and with a sort that median was 80% of a
 * diagnose() call (4 ms for 120 snapshots, Node 20), too much for the monitor's 1 ms budget.
 */
function select(a: Float64Array, k: number): number {
  let left = 0;
  let right = a.length - 1;
  while (right > left) {
    const middle = (left + right) >> 1;
    // Median of three as the pivot: sorted input (the common case: a rising series) stays O(n).
    if (a[middle] < a[left]) swap(a, middle, left);
    if (a[right] < a[left]) swap(a, right, left);
    if (a[right] < a[middle]) swap(a, right, middle);
    const pivot = a[middle];
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return a[k];
  }
  return a[k];
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/** Median of `values` (not modified); NaN for an empty list or one holding NaN. */
export function median(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return Number.NaN;
  const copy = Float64Array.from(values);
  // NaN compares false both ways and would stall the partition's scans: answer NaN, as a sort
  // (which puts NaN last) would not have said anything meaningful either.
  for (let i = 0; i < n; i++) if (copy[i] !== copy[i]) return Number.NaN;
  const middle = n >> 1;
  const upper = select(copy, middle);
  if (n % 2 === 1) return upper;
  // After select, everything before `middle` is <= a[middle]: the lower middle is their maximum.
  let lower = copy[0];
  for (let i = 1; i < middle; i++) if (copy[i] > lower) lower = copy[i];
  return midpoint(lower, upper);
}

/** (a + b) / 2, without overflow to Infinity near Number.MAX_VALUE. */
export function midpoint(a: number, b: number): number {
  const sum = a + b;
  // Halving first would round subnormals; halve first only when the sum overflows.
  return Number.isFinite(sum) ? sum / 2 : a / 2 + b / 2;
}
