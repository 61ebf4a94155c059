/** `allocscope attach PID [--allow-inject] [--json] [--timeout MS] [--injector ptrace|gdb] [--debug-symbols]` */
import { constants } from 'node:os';
import type { AllocscopeError } from '../errors';
import { attachAgent, type Injector } from '../targets/attach';
import { agentLibraryPath } from '../targets/agent';
import { numberFlag, parseArgs, UsageError } from './args';
import { describeSnapshot } from './snapshot-command';

/** Exit status when consent is missing: nothing was done. */
export const EXIT_NO_CONSENT = 3;

export function injectionRisks(pid: number): string {
  return `allocscope attach ${pid} would load allocscope's agent into the running process ${pid}:

  - it stops one thread at a time for microseconds (ptrace, no signals) until one is at a
    safe point, then makes that thread call dlopen("${agentLibraryPath()}")
    and return to where it was. That thread is busy for the load (under 1 ms measured here);
    the rest of the process runs on. (--injector gdb stops every thread for ~0.03-0.5 s.)
  - that code then runs inside the process: one thread with all signals blocked serving
    snapshots on a Unix socket only its user and root can reach; it is never unloaded;
  - loading code into a live process can, in rare cases, crash or hang it. allocscope injects
    only at a safe point (a thread asleep in a plain blocking call, or in the program's own
    code: never inside malloc, the C library or the loader), keeps every register, bounds every
    step and checks the process runs afterwards; killing allocscope at any moment is safe.

Processes you can restart should get the agent with LD_PRELOAD instead (allocscope agent-path).
To go ahead: allocscope attach ${pid} --allow-inject`;
}

export async function attachCommand(argv: readonly string[], out: (text: string) => void, err: (text: string) => void): Promise<number> {
  const { flags, positional } = parseArgs(argv, { 'allow-inject': 'boolean', json: 'boolean', timeout: 'string', injector: 'string', 'debug-symbols': 'boolean' });
  if (positional.length !== 1 || !/^[1-9]\d*$/.test(positional[0])) {
    throw new UsageError(`attach takes one PID (a positive whole number); got ${positional.length === 0 ? 'none' : positional.join(' ')}`);
  }
  const pid = Number(positional[0]);
  const timeoutMs = numberFlag(flags, 'timeout', 15_000, 1, 600_000);
  const injector = flags.injector as Injector | undefined;
  if (injector !== undefined && injector !== 'ptrace' && injector !== 'gdb') throw new UsageError(`--injector is ptrace or gdb; got ${injector}`);
  if (flags['debug-symbols'] === true && injector !== 'gdb') throw new UsageError('--debug-symbols is for --injector gdb');
  if (flags['allow-inject'] !== true) {
    err(injectionRisks(pid));
    return EXIT_NO_CONSENT;
  }
  // SIGINT/SIGTERM while the injector holds the target: undo (it detaches) before exiting, never just die.
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    received ??= signal;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await attachAgent(pid, { allowInject: true, timeoutMs, injector, ...(flags['debug-symbols'] === true ? { debugSymbols: true } : {}), signal: controller.signal });
    const how = result.injected
      ? `agent loaded into pid ${pid} ${result.safePoint ?? ''}; target stopped ~${result.stoppedMs} ms${result.callMs !== null ? `, one thread busy ${result.callMs} ms loading it` : ''} (the ${result.injector} injector ran ${result.injectorMs} ms)${result.resumedTarget ? '; it was left stopped and was resumed (SIGCONT)' : ''}`
      : `pid ${pid} already runs an agent; nothing injected`;
    if (flags.json === true) {
      out(JSON.stringify(result.snapshot, null, 2));
      err(`allocscope attach: ${how}`);
    } else {
      out(`${how}\n\n${describeSnapshot(result.snapshot)}`);
    }
    return 0;
  } catch (error) {
    if (received === null) throw error;
    // Interrupted: the attach has been undone (or said what it could not undo); exit as the signal would.
    err(`allocscope attach: ${(error as AllocscopeError).message} [${(error as AllocscopeError).code}]`);
    return 128 + constants.signals[received];
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
