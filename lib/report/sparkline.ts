/** A one-line chart of a series: the terminal view's RSS and live-bytes trend. */
const BARS = '▁▂▃▄▅▆▇█';

/** The last `width` values as bars scaled between their min and max; gaps (null) as spaces. */
export function sparkline(values: ReadonlyArray<number | null>, width = 40): string {
  const recent = values.slice(-width);
  const known = recent.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length === 0) return '';
  const min = Math.min(...known);
  const span = Math.max(...known) - min;
  return recent
    .map((v) => (v === null || !Number.isFinite(v) ? ' ' : BARS[span === 0 ? 0 : Math.min(7, Math.floor(((v - min) / span) * 8))]))
    .join('');
}
