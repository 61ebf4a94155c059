/**
 * One server of a compare run: started as `allocscope run` starts a command (planRun: the
 * variant's allocator, then the agent, in LD_PRELOAD; an argv array, no shell), waited for until
 * it accepts connections on the load's port, and stopped by its pid (SIGTERM, then SIGKILL).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { AllocscopeError } from '../errors';
import { agentSocketExists } from '../targets/agent';
import { planRun } from '../cli/run';
import type { CompareVariant } from './variants';

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartedServer {
  pid: number;
  child: ChildProcess;
  /** Resolves when the server has exited, for whatever reason. */
  exited: Promise<ServerExit>;
  /** Null while it runs. */
  exit(): ServerExit | null;
  /** The last lines the server wrote to stderr (for error sentences). */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it ended. */
  stop(graceMs?: number): Promise<ServerExit>;
}

/** True when something accepts TCP connections at host:port within `timeoutMs`. */
export function portOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The host and port of a load URL (port 80 when the URL names none). */
export function hostPort(url: URL): { host: string; port: number } {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { host, port: url.port === '' ? 80 : Number(url.port) };
}

function describeExit(exit: ServerExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit status ${exit.code}`;
}

/** A sentence for a server that ended by itself, with what it said last. */
export function exitSentence(exit: ServerExit, stderr: string, when: string): string {
  const said = stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 400);
  return `the server ended (${describeExit(exit)}) ${when}${said === '' ? '' : `; it said: ${said}`}.`;
}

/**
 * Starts `command` under `variant` and waits until `url`'s port accepts connections and the agent's
 * socket exists (or 2 s have passed: the server may not be able to load it). Rejects with EINVAL
 * (the port is already taken, the command cannot start), ESRCH (it ended before listening),
 * ETIMEDOUT (it did not listen within `timeoutMs`) or ECANCELED (`signal` aborted); a server
 * started and then abandoned is stopped first.
 */
export async function startServer(variant: CompareVariant, command: readonly string[], url: URL, timeoutMs: number, signal: AbortSignal): Promise<StartedServer> {
  const { host, port } = hostPort(url);
  // A server already listening there would answer the load instead of ours: refuse.
  if (await portOpen(host, port)) {
    throw new AllocscopeError('EINVAL', `something already accepts connections on ${host}:${port}; stop it, or give compare's server another port and --url.`, { host, port });
  }
  const plan = planRun(variant.allocator, Object.entries(variant.env).map(([k, v]) => `${k}=${v}`), command);
  const child = spawn(plan.command, plan.args, { env: plan.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4096)));
  let exitInfo: ServerExit | null = null;
  const exited = new Promise<ServerExit>((resolve) => {
    child.once('exit', (code, sig) => resolve((exitInfo = { code, signal: sig })));
    // spawn failures (ENOENT, EACCES) emit 'error' and no 'exit'.
    child.once('error', () => resolve((exitInfo = { code: 127, signal: null })));
  });
  const spawnError = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', resolve);
  });
  if (spawnError !== null) {
    throw new AllocscopeError('EINVAL', `cannot start the server ${plan.command}: ${spawnError.message}.`, { command: [...command] });
  }
  const server: StartedServer = {
    pid: child.pid as number,
    child,
    exited,
    exit: () => exitInfo,
    stderrTail: () => stderr,
    stop: async (graceMs = 5000) => {
      if (exitInfo !== null) return exitInfo;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (exitInfo === null) child.kill('SIGKILL');
      }, graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  const until = performance.now() + timeoutMs;
  try {
    while (!(await portOpen(host, port, 200))) {
      if (exitInfo !== null) throw new AllocscopeError('ESRCH', exitSentence(exitInfo, stderr, `before it accepted connections on ${host}:${port}`), { exit: exitInfo });
      if (signal.aborted) throw new AllocscopeError('ECANCELED', 'compare was interrupted while the server started.');
      if (performance.now() > until) {
        throw new AllocscopeError('ETIMEDOUT', `the server did not accept connections on ${host}:${port} within ${timeoutMs} ms; check that --url names the port it listens on.`, { host, port });
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const agentUntil = performance.now() + 2000;
    while (exitInfo === null && !agentSocketExists(server.pid) && performance.now() < agentUntil) await new Promise((resolve) => setTimeout(resolve, 20));
  } catch (error) {
    await server.stop(1000);
    throw error;
  }
  return server;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
