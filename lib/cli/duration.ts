/** Durations on the command line: "250ms", "1s", "1.5s", "10m", "2h" (a bare number is seconds). */
import { UsageError } from './args';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(flag: string, text: string, minMs: number, maxMs: number): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const ms = match === null ? Number.NaN : Number(match[1]) * UNITS[match[2] ?? 's'];
  if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
    throw new UsageError(`--${flag} takes a duration such as 500ms, 1s, 10m or 2h, from ${minMs} ms to ${maxMs / 3_600_000} h; got ${JSON.stringify(text)}`);
  }
  return Math.round(ms);
}
