/** Human formatting of bytes and ratios, shared by every terminal view. */

/** 1536 -> "1.5 KiB"; null -> "-". */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return '-';
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${sign}${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** A ratio with its byte delta, Redis-style: "1.42 (+3.1 MiB)". */
export function formatRatio(ratio: { ratio: number; bytes: number } | null): string {
  if (ratio === null) return '-';
  const delta = formatBytes(ratio.bytes);
  return `${ratio.ratio.toFixed(2)} (${ratio.bytes >= 0 ? '+' : ''}${delta})`;
}

/** A plain text table with right-aligned columns after the first. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** 850 -> "850 ms", 12_300 -> "12.3 s", 270_000 -> "4.5 min", then "h" and "d". */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${ms.toFixed(0)} ms`;
  if (abs < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (abs < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (abs < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

/** A byte rate with its unit: "+2.9 MiB/s", "-512 B/min". */
export function formatRate(bytesPerUnit: number, unit: string): string {
  return `${bytesPerUnit >= 0 ? '+' : ''}${formatBytes(bytesPerUnit)}/${unit}`;
}

/** 0.4123 -> "41%". */
export function formatPercent(share: number): string {
  return `${(share * 100).toFixed(0)}%`;
}
