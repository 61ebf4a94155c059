/**
 * `allocscope report RUN_DIR|FILE.ndjson [-o report.html]`: one self-contained HTML page with the
 * charts, summary table and verdicts of a compare run directory or a profile-pid --out file.
 */
import { join } from 'node:path';
import { formatBytes } from '../report/format';
import { writeReport } from '../report/html';
import { loadReportInput } from '../report/run-loader';
import { parseArgs, UsageError } from './args';

/** Where the page goes without -o: report.html inside a run directory, FILE.html beside a file. */
export function defaultReportPath(input: string, isDirectory: boolean): string {
  if (isDirectory) return join(input, 'report.html');
  return `${input.replace(/\.(ndjson|jsonl)$/, '')}.html`;
}

export function reportCommand(argv: readonly string[], out: (text: string) => void): number {
  // -o is the one short flag (the spelling); the parser knows long flags only.
  const { flags, positional } = parseArgs(argv.map((arg) => (arg === '-o' ? '--out' : arg)), { out: 'string', quiet: 'boolean' });
  if (positional.length !== 1) {
    throw new UsageError(`report takes one input (a compare run directory or an .ndjson samples file); got ${positional.length === 0 ? 'none' : positional.join(' ')}`);
  }
  const input = loadReportInput(positional[0]);
  const outPath = typeof flags.out === 'string' ? flags.out : defaultReportPath(positional[0], input.kind === 'compare');
  const written = writeReport(input, outPath);
  if (flags.quiet !== true) {
    const runs = input.runs.length === 1 ? '1 run' : `${input.runs.length} runs`;
    out(`report written to ${written.path} (${formatBytes(written.bytes)}, ${written.charts} charts, ${runs})`);
  }
  return 0;
}
