/**
 * Choosing how to read a process: the deepest insight level available (DESIGN.md "Targets and
 * insight levels"): its agent socket when it answers, else /proc. The choice and the reason a
 * deeper level was not reached travel with every snapshot (levelNote).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { AllocscopeError } from '../errors';
import { openProcTarget } from '../proc/target';
import { openProcTree } from '../proc/tree';
import type { InsightLevel, Snapshot } from '../snapshot';
import { agentSocketExists, agentSocketPath, readAgentSnapshot, type AgentOptions } from './agent';

export interface TargetSource {
  pid: number;
  level: InsightLevel;
  /** Why a deeper level was not reached, or null. */
  note: string | null;
  /** One Snapshot. Rejects ESRCH once the process is gone, EINVAL once the source is closed. */
  read(): Promise<Snapshot>;
  /**
   * Releases what the source holds: the procfs kinds keep /proc files open between reads (2 for a
   * process; with --children 3 for the root and 3 per descendant); an agent source holds none.
   * Idempotent.
   */
  close(): void;
}

export interface OpenTargetOptions extends AgentOptions {
  /** Read the process and all its descendants as one tree (procfs level, PSS per child). */
  children?: boolean;
}

/** True while the process exists and is not a zombie (exited, waiting to be reaped). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the last ')' (the command name may contain spaces and parentheses).
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function gone(pid: number): AllocscopeError {
  return new AllocscopeError('ESRCH', `process ${pid} does not exist (or has exited).`, { pid });
}

/**
 * How long a failed read waits for a dying target to show as gone. SIGKILL closes the target's
 * files (its agent socket: ECONNREFUSED) in do_exit's exit_files(), before exit_notify() makes it a
 * zombie; a thread group is a zombie only once its last thread has died. In that window
 * /proc/PID/stat still shows the process running (seen in CI: a stale-socket error for a target
 * killed mid-run). Bounded: a live target whose read failed for another reason costs this once.
 */
export const EXIT_GRACE_MS = 500;

/** Polls until the process is gone or a zombie (true), or `withinMs` has passed (false). */
export async function exitsWithin(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (!processAlive(pid)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A reader that turns a vanished process into ESRCH, whatever the read itself reported: a read
 * that fails while the target dies is the target's end, not an error of the profiler.
 */
export function guardedRead(pid: number, read: () => Snapshot | Promise<Snapshot>): () => Promise<Snapshot> {
  return async () => {
    if (!processAlive(pid)) throw gone(pid);
    try {
      return await read();
    } catch (error) {
      if (await exitsWithin(pid, EXIT_GRACE_MS)) throw gone(pid);
      throw error;
    }
  };
}

/**
 * A TargetSource over `read` (guarded: see guardedRead) that hands `release` what it holds on
 * close(), once; reads after close() reject with EINVAL, whatever the process does meanwhile.
 */
function sourceOf(pid: number, level: InsightLevel, note: string | null, read: () => Snapshot | Promise<Snapshot>, release: () => void): TargetSource {
  const guarded = guardedRead(pid, read);
  let closed = false;
  return {
    pid,
    level,
    note,
    read: () => (closed ? Promise.reject(new AllocscopeError('EINVAL', `the source of process ${pid} was closed; open it again (openTarget) to read it.`, { pid })) : guarded()),
    close() {
      if (closed) return;
      closed = true;
      release();
    },
  };
}

/**
 * Opens `pid` at the deepest level it answers at (its agent socket, else /proc; --children: the
 * tree through /proc) and takes one reading to learn the level. close() the source when done: the
 * procfs kinds hold file descriptors until then.
 */
export async function openTarget(pid: number, options: OpenTargetOptions = {}): Promise<TargetSource> {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new AllocscopeError('EINVAL', `a pid is a positive whole number; got ${pid}.`, { pid });
  if (!existsSync(`/proc/${pid}`) || !processAlive(pid)) throw gone(pid);
  let agentProblem: string | null = null;
  if (options.children === true) {
    // Kept open between samples: each descendant's status, statm and children file (see ProcTree).
    const tree = openProcTree(pid);
    const first = readOrClose(tree, () => tree.read());
    return sourceOf(pid, first.level, first.levelNote, () => tree.read(), () => tree.close());
  }
  if (agentSocketExists(pid, options)) {
    try {
      await readAgentSnapshot(pid, options);
      // Every read opens and closes its own connection: nothing is held between reads.
      return sourceOf(pid, 'agent', null, () => readAgentSnapshot(pid, options), () => undefined);
    } catch (error) {
      agentProblem = (error as Error).message;
    }
  }
  // /proc: status and statm kept open for polling; the snapshot's levelNote says why the agent
  // level was not reached (and, when a socket was there but failed, what went wrong).
  const proc = openProcTarget(pid);
  const withAgentProblem = (snapshot: Snapshot): Snapshot =>
    agentProblem === null ? snapshot : { ...snapshot, levelNote: `${agentProblem} ${snapshot.levelNote ?? ''}`.trim() };
  const first = readOrClose(proc, () => withAgentProblem(proc.read()));
  // An agent that comes up later (a program just started by `allocscope run` on a busy machine,
  // or one attached meanwhile) is taken from the read its socket appears on, and kept. A socket
  // that was there and failed (stale, or too slow on a loaded machine) is tried again once it has
  // been replaced (another inode), else at most every AGENT_RETRY_MS: a stat per read otherwise.
  let socketSeen = agentSocketInode(pid, options);
  let triedAt = Date.now();
  let agentUp = false;
  const read = async (): Promise<Snapshot> => {
    if (agentUp) return readAgentSnapshot(pid, options);
    const inode = agentSocketInode(pid, options);
    if (inode !== null && (inode !== socketSeen || Date.now() - triedAt >= AGENT_RETRY_MS)) {
      socketSeen = inode;
      triedAt = Date.now();
      try {
        const snapshot = await readAgentSnapshot(pid, options);
        agentUp = true;
        proc.close();
        return snapshot;
      } catch {
        /* not answering yet: /proc for this read */
      }
    }
    return withAgentProblem(proc.read());
  };
  return sourceOf(pid, first.level, first.levelNote, read, () => proc.close());
}

/** How often a procfs source asks a socket that failed before whether its agent answers now. */
export const AGENT_RETRY_MS = 10_000;

/** The inode of the agent socket file of `pid`, or null when there is none. */
function agentSocketInode(pid: number, options: AgentOptions): number | null {
  try {
    return statSync(agentSocketPath(pid, options)).ino;
  } catch {
    return null;
  }
}

/** The first reading of a source just opened; when it throws, the files are let go before the error passes on. */
function readOrClose(files: { close(): void }, read: () => Snapshot): Snapshot {
  try {
    return read();
  } catch (error) {
    files.close();
    throw error;
  }
}
