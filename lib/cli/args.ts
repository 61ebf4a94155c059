/** A small strict argv parser: known flags only, every mistake a UsageError with a sentence. */

export class UsageError extends Error {}
UsageError.prototype.name = 'UsageError';

export interface FlagSpec {
  /** 'boolean' flags take no value; 'string' flags take the next argument or --flag=value;
      'strings' flags may repeat and collect every value. */
  [flag: string]: 'boolean' | 'string' | 'strings';
}

export interface ParsedArgs {
  flags: Record<string, string | boolean | string[]>;
  positional: string[];
  /** Everything after a bare `--`. */
  rest: string[];
}

export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const flags: ParsedArgs['flags'] = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return { flags, positional, rest: argv.slice(i + 1) };
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = spec[name];
    if (kind === undefined) {
      throw new UsageError(`unknown flag --${name}; known: ${Object.keys(spec).map((f) => `--${f}`).join(', ') || 'none'}`);
    }
    if (kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags[name] = true;
      continue;
    }
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      value = next;
      i++;
    }
    if (kind === 'strings') flags[name] = [...((flags[name] as string[] | undefined) ?? []), value];
    else flags[name] = value;
  }
  return { flags, positional, rest: [] };
}

/** A positive number flag with bounds, or its default. */
export function numberFlag(flags: ParsedArgs['flags'], name: string, fallback: number, min: number, max: number): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isFinite(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a number from ${min} to ${max}; got ${JSON.stringify(raw)}`);
  }
  return value;
}
