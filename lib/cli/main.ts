#!/usr/bin/env node
/** The `allocscope` command. */
import { AllocscopeError } from '../errors';
import { UsageError } from './args';
import { agentLibraryPath } from '../targets/agent';
import { attachCommand } from './attach';
import { compareCommand } from './compare';
import { demoCommand } from './demo';
import { profilePidCommand } from './profile-pid';
import { reportCommand } from './report';
import { runCommand } from './run';
import { snapshotCommand } from './snapshot-command';

const USAGE = `usage: allocscope <command> [flags]

commands:
  snapshot [--json] [--full]   this process's allocator, RSS and ratios (a smoke test)
  demo [--seconds N] [--json] [--out DIR]
                               compare on the bundled example server (8 threads, heavy-tailed
                               requests): each allocator N s (default 20) under the same load
  compare [--allocators glibc,jemalloc,tcmalloc,mimalloc,glibc:MALLOC_ARENA_MAX=2]
          [--requests 200000] [--step 1000] [--concurrency 10] [--url http://127.0.0.1:PORT/path]
          [--load builtin|ab|wrk|'["cmd","{url}"]'|'shell command'] [--repeat N] [--out DIR]
          [--duration D] [--start-timeout D] [--json] [--quiet] -- SERVER_CMD ARGS
                               the same server and load under each allocator: RSS and live bytes
                               every --step requests, table, chart, run directory ({port} in
                               SERVER_CMD: a free port, and the default --url)
  agent-path                   the path of liballocscope_agent.so, for LD_PRELOAD
  attach PID --allow-inject [--json] [--timeout MS] [--injector ptrace|gdb [--debug-symbols]]
                               load the agent into a running process (ptrace by default on
                               x86_64, else gdb; without --allow-inject: explains the risks, exits 3)
  profile-pid PID [--interval 1s] [--duration 10m | --samples N] [--out run.ndjson|run.csv]
              [--json] [--children] [--quiet]
                               poll a process at the deepest level reachable (agent, else /proc),
                               live view, samples streamed to --out, summary and verdict at the end
                               (exit 3: no such pid, 4: permission denied)
  run [--allocator glibc|jemalloc|tcmalloc|mimalloc] [--env K=V]... [--out F] [--interval 1s]
      [--duration D] [--json] [--quiet] -- CMD ARGS
                               start CMD with that allocator and the agent preloaded, profile it,
                               pass signals through; at --duration CMD is sent SIGTERM
  report RUN_DIR|FILE.ndjson [-o report.html] [--quiet]
                               one self-contained HTML page (charts, summary table, verdicts) of a
                               compare run directory or a profile-pid --out file
  help                         this text`;

export async function main(argv: readonly string[], out: (text: string) => void, err: (text: string) => void): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'snapshot':
        return snapshotCommand(rest, out);
      case 'compare':
        return await compareCommand(rest, out, err);
      case 'demo':
        return await demoCommand(rest, out, err);
      case 'attach':
        return await attachCommand(rest, out, err);
      case 'profile-pid':
        return await profilePidCommand(rest, out, err);
      case 'run':
        return await runCommand(rest, out, err);
      case 'report':
        return reportCommand(rest, out);
      case 'agent-path':
        out(agentLibraryPath());
        return 0;
      case 'help':
      case '--help':
      case '-h':
        out(USAGE);
        return 0;
      default:
        err(command === undefined ? USAGE : `allocscope: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof UsageError) {
      err(`allocscope ${command}: ${error.message}`);
      return 2;
    }
    if (error instanceof AllocscopeError) {
      err(`allocscope ${command}: ${error.message} [${error.code}]`);
      return 1;
    }
    throw error;
  }
}

/**
 * A reader that goes away early (`allocscope profile-pid PID | head -1`) makes the next write to
 * stdout fail with EPIPE, which Node raises as an unhandled 'error' event: a stack trace and exit
 * 1. Instead the command ends as on SIGTERM (profile-pid stops sampling, its --out file already
 * whole; run passes it on to its command), quietly: later writes to the dead pipe are dropped.
 */
export function endOnClosedStdout(): void {
  let closed = false;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (closed) return;
    if (error.code !== 'EPIPE') throw error;
    closed = true;
    process.kill(process.pid, 'SIGTERM');
  });
}

if (require.main === module) {
  endOnClosedStdout();
  void main(process.argv.slice(2), (text) => console.log(text), (text) => console.error(text)).then((code) => {
    process.exitCode = code;
  });
}
