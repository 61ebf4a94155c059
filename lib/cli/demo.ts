/**
 * `allocscope demo` (npm run demo): `compare` on the bundled example server
 * (native/demo-server/demo_server.c: 8 threads, heavy-tailed requests of small parts, a long-lived
 * cache), every allocator installed here plus tuned glibc (MALLOC_ARENA_MAX=2), the same built-in
 * load for the same time each. The differences it prints are measured on this machine, not
 * scripted; variants whose library is missing are named with the Debian package that adds them.
 * It ends with the table, the chart, the run directory and the HTML report written into it.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AllocscopeError } from '../errors';
import { compareWithOptions } from './compare';
import { freePort } from '../compare/server';
import { parseVariants } from '../compare/variants';
import { writeReport } from '../report/html';
import { loadReportInput } from '../report/run-loader';
import { numberFlag, parseArgs } from './args';

/** Plain glibc first: the baseline every ratio is taken against. */
export const DEMO_VARIANTS = 'glibc,glibc:MALLOC_ARENA_MAX=2,jemalloc,tcmalloc,mimalloc';

/**
 * Seconds of load per variant. jemalloc returns freed pages only after its decay time (10 s by
 * default, opt.dirty_decay_ms), so shorter runs would show its dirty pages as if kept; 20 s per
 * variant keeps the five runs under two minutes.
 */
export const DEMO_SECONDS = 20;

/** The bundled example server, built by node-gyp next to the agent. */
export function demoServerPath(): string {
  // lib/cli/demo.ts and dist/cli/demo.js are both two levels below the package root.
  return join(__dirname, '..', '..', 'build', 'Release', 'demo_server');
}

export async function demoCommand(argv: readonly string[], out: (text: string) => void, err: (text: string) => void = out): Promise<number> {
  const { flags } = parseArgs(argv, { seconds: 'string', json: 'boolean', out: 'string', quiet: 'boolean' });
  const seconds = numberFlag(flags, 'seconds', DEMO_SECONDS, 1, 600);
  const server = demoServerPath();
  if (!existsSync(server)) {
    throw new AllocscopeError('EUNSUPPORTED', `the demo server is not built (${server}); run npm install (or npx node-gyp rebuild) in the package.`, { server });
  }
  const port = await freePort();
  const outDir = flags.out === undefined ? mkdtempSync(join(tmpdir(), 'allocscope-demo-')) : String(flags.out);
  if (flags.json !== true && flags.quiet !== true) {
    err(`allocscope demo: the example server (8 threads; per request 4 KiB-16 MiB of small temporaries, Pareto; a cache that lives on) under each allocator, ${seconds} s of load each.\n`);
  }
  const { code, summary } = await compareWithOptions(
    {
      command: [server, '--port', String(port)],
      variants: parseVariants(DEMO_VARIANTS),
      // The time bound ends each run; the count is only a ceiling.
      requests: 100_000_000,
      step: 2000,
      concurrency: 10,
      url: new URL(`http://127.0.0.1:${port}/`),
      load: { kind: 'builtin' },
      repeat: 1,
      outDir,
      durationMs: seconds * 1000,
      startTimeoutMs: 10_000,
      json: flags.json === true,
      quiet: flags.quiet === true || flags.json === true,
    },
    out,
    err,
  );
  if (flags.json !== true && summary.runs.some((r) => r.samplesFile !== null)) {
    // The page to look at (allocscope report): beside the samples, in the run directory.
    try {
      const written = writeReport(loadReportInput(outDir), join(outDir, 'report.html'));
      out(`Report: ${written.path} (open it in a browser; allocscope report ${outDir} writes it again)`);
    } catch (error) {
      err(`allocscope demo: the HTML report could not be written: ${(error as Error).message}`);
    }
  }
  return code;
}
