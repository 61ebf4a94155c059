/**
 * The one error class of allocscope. Callers branch on `code`, never on the message text; the
 * message is a sentence that says what to do (DESIGN.md "Errors").
 */
export type AllocscopeErrorCode =
  /** The call needs an allocator that does not serve malloc in this process. */
  | 'ENOALLOCATOR'
  /** The platform or allocator build cannot do this at all (non-Linux, musl, stats compiled out). */
  | 'EUNSUPPORTED'
  /** No such mallctl / property name. */
  | 'ENOCTL'
  /** An argument is out of range, of the wrong type, or names something read-only. */
  | 'EINVAL'
  /** No such process. */
  | 'ESRCH'
  /** The process exists but this user may not read it at the requested level. */
  | 'EACCES'
  /** The agent could not be reached or refused the request. */
  | 'EAGENT'
  /** A peer spoke something other than the allocscope wire format. */
  | 'EPROTO'
  /** Writing a file failed (a full disk, a quota, an I/O error); what was written is whole. */
  | 'EIO'
  /** A bounded wait ran out. */
  | 'ETIMEDOUT'
  /** The caller cancelled (an AbortSignal, or SIGINT/SIGTERM of the CLI) and the work was undone. */
  | 'ECANCELED'
  /** A measured native leak (testing assertions). */
  | 'ELEAK'
  /** An optional peer dependency (prom-client, @opentelemetry/api) is not installed. */
  | 'ENODEP';

export class AllocscopeError extends Error {
  readonly code: AllocscopeErrorCode;
  /** Structured facts behind the error (numbers, names), for programs. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: AllocscopeErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.details = details;
    Error.captureStackTrace?.(this, AllocscopeError);
  }
}
AllocscopeError.prototype.name = 'AllocscopeError';

/** Throws EINVAL unless `value` is a finite number within [min, max]. One wording everywhere. */
export function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new AllocscopeError(
      'EINVAL',
      `${name} must be a number from ${min} to ${max}; got ${describe(value)}.`,
      { name, value },
    );
  }
  return value;
}

/** checkNumber, and a whole number. */
export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (!Number.isInteger(value)) {
    throw new AllocscopeError('EINVAL', `${name} must be a whole number from ${min} to ${max}; got ${describe(value)}.`, { name, value });
  }
  return checkNumber(name, value, min, max);
}

/** A short, safe description of any value for an error sentence. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
