/**
 * What `attachAgent` checks before it lets an injector (ptrace or gdb) near a process: the pid, the process state, the
 * caller's right to ptrace it (never more than the caller already has), the namespaces, and that
 * the target could load the agent and nobody else could swap it.
 */
import { accessSync, constants, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { delimiter, dirname, join, sep } from 'node:path';
import { AllocscopeError } from '../errors';

/** /proc/PID/status as name -> value. */
export type ProcStatus = Readonly<Record<string, string>>;

/** /proc/PID/status, or one thread's /proc/PID/task/TID/status; null when gone or unreadable. */
export function readStatus(pid: number, tid?: number): ProcStatus | null {
  try {
    const status: Record<string, string> = {};
    const path = tid === undefined ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`;
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) status[line.slice(0, colon)] = line.slice(colon + 1).trim();
    }
    return status;
  } catch {
    return null;
  }
}

/** The one-letter state of /proc/PID/stat (R, S, D, T, t, Z, X...), or null when it is gone. */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || null;
  } catch {
    return null;
  }
}

const SIGSTOP_BIT = 1n << 18n; // signal 19

/** True when a SIGSTOP waits in the process's or any thread's pending set (e.g. left by a killed gdb). */
export function stopSignalPending(pid: number): boolean {
  const pendingIn = (status: ProcStatus | null) =>
    status !== null && ['SigPnd', 'ShdPnd'].some((key) => (BigInt(`0x${status[key] ?? '0'}`) & SIGSTOP_BIT) !== 0n);
  if (pendingIn(readStatus(pid))) return true;
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => pendingIn(readStatus(pid, Number(tid))));
  } catch {
    return false;
  }
}

export function checkPid(pid: unknown): number {
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) {
    throw new AllocscopeError('EINVAL', `a pid is a positive whole number; got ${String(pid)}.`, { pid });
  }
  if (pid === process.pid) {
    throw new AllocscopeError('EINVAL', `pid ${pid} is this process: a process cannot ptrace itself. Use snapshot() for this process.`, { pid });
  }
  return pid;
}

/** The target exists, runs, and no one else traces it. */
export function checkRunnable(pid: number): ProcStatus {
  const state = processState(pid);
  const status = readStatus(pid);
  if (state === null || status === null || state === 'Z' || state === 'X') {
    throw new AllocscopeError('ESRCH', state === 'Z' ? `pid ${pid} has exited (a zombie waiting for its parent).` : `no process with pid ${pid}.`, { pid, state });
  }
  const tracer = Number(status.TracerPid ?? 0);
  if (tracer !== 0) {
    throw new AllocscopeError('EACCES', `pid ${pid} is already traced by pid ${tracer} (a debugger or strace); a process has one tracer at a time. Detach it first.`, { pid, tracer });
  }
  if (state === 'T' || state === 't') {
    // Injecting into a stopped process crashed memray's targets (bloomberg/memray#450), and
    // gdb's detach would resume a process someone stopped on purpose.
    throw new AllocscopeError('EINVAL', `pid ${pid} is stopped (state ${state}: SIGSTOP, Ctrl-Z or a debugger); allocscope attaches only to running processes. Resume it with kill -CONT ${pid} if that is intended.`, { pid, state });
  }
  return status;
}

function procOwner(pid: number): number {
  try {
    return statSync(`/proc/${pid}`).uid;
  } catch {
    throw new AllocscopeError('ESRCH', `pid ${pid} exited.`, { pid });
  }
}

/** Who asks: the identity gdb will run with, and the kernel's ptrace policy. */
export interface PtraceCaller {
  /** Real uid and gid (PTRACE_MODE_ATTACH_REALCREDS compares these). */
  uid: number;
  gid: number;
  /** CAP_SYS_PTRACE in the effective set. */
  capSysPtrace: boolean;
  /** kernel.yama.ptrace_scope, or null without Yama. */
  yamaScope: number | null;
}

const CAP_SYS_PTRACE = 19n;

/** This process as a ptrace caller, read from /proc/self/status and /proc/sys. */
export function currentCaller(): PtraceCaller {
  const caps = readStatus(process.pid)?.CapEff ?? '0';
  let yamaScope: number | null = null;
  try {
    yamaScope = Number(readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim());
  } catch {
    /* no Yama LSM */
  }
  return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, capSysPtrace: (BigInt(`0x${caps}`) >> CAP_SYS_PTRACE) % 2n === 1n, yamaScope };
}

/**
 * The kernel's ptrace rule (ptrace(2) "Ptrace access mode checking", PTRACE_MODE_ATTACH_REALCREDS),
 * checked up front so the refusal comes with its reason. gdb then runs as the caller: attach never
 * gains a privilege the caller lacks (no sudo, no setuid helper).
 */
export function checkPtraceAllowed(pid: number, status: ProcStatus, caller: PtraceCaller = currentCaller()): void {
  const [realUid, effectiveUid, savedUid] = (status.Uid ?? '').split(/\s+/).map(Number);
  const [realGid, effectiveGid, savedGid] = (status.Gid ?? '').split(/\s+/).map(Number);
  const { uid, gid, capSysPtrace: capable, yamaScope: scope } = caller;
  const details = { pid, callerUid: uid, targetUid: effectiveUid, capSysPtrace: capable, yamaScope: scope };
  const sameUser = [realUid, effectiveUid, savedUid].every((u) => u === uid) && [realGid, effectiveGid, savedGid].every((g) => g === gid);
  if (!sameUser && !capable) {
    throw new AllocscopeError(
      'EACCES',
      `pid ${pid} runs as uid ${effectiveUid} (gid ${effectiveGid}) and this is uid ${uid} (gid ${gid}) without CAP_SYS_PTRACE: the kernel would refuse to let the injector attach. Run allocscope as the process's own user; allocscope never raises its own privileges.`,
      details,
    );
  }
  // A process that changed credentials (setuid) or called prctl(PR_SET_DUMPABLE, 0) is not
  // dumpable: procfs then shows its files as owned by root (proc(5)), and only CAP_SYS_PTRACE may attach.
  if (!capable && procOwner(pid) !== effectiveUid) {
    throw new AllocscopeError('EACCES', `pid ${pid} is not dumpable (it changed credentials or disabled core dumps): only a caller with CAP_SYS_PTRACE may attach to it.`, details);
  }
  if (scope === 3) {
    throw new AllocscopeError('EACCES', 'kernel.yama.ptrace_scope is 3: no process may ptrace another until reboot, so nothing can be injected. Start the process with the preload agent instead (allocscope agent-path).', details);
  }
  if ((scope === 1 || scope === 2) && !capable) {
    throw new AllocscopeError(
      'EACCES',
      `kernel.yama.ptrace_scope is ${scope}: ${scope === 1 ? 'only a parent process (or one the target named with PR_SET_PTRACER)' : 'only a caller with CAP_SYS_PTRACE'} may ptrace pid ${pid}, and the injector would be neither. Run allocscope with CAP_SYS_PTRACE, or start the process with the preload agent (allocscope agent-path).`,
      details,
    );
  }
}

/** Same PID and mount namespaces: the pid gdb attaches to and the socket path the agent makes must mean the same thing on both sides. */
export function checkSameNamespaces(pid: number): void {
  for (const kind of ['pid', 'mnt'] as const) {
    let ours: string;
    let theirs: string;
    try {
      ours = readlinkSync(`/proc/self/ns/${kind}`);
      theirs = readlinkSync(`/proc/${pid}/ns/${kind}`);
    } catch (error) {
      throw new AllocscopeError('EACCES', `cannot read the ${kind} namespace of pid ${pid} (${(error as NodeJS.ErrnoException).code}): only its own user or CAP_SYS_PTRACE may.`, { pid });
    }
    if (ours !== theirs) {
      // Across namespaces gdb attaches but the agent's socket lands in the target's /tmp under
      // its own pid (and memray saw targets crash: bloomberg/memray#846).
      throw new AllocscopeError(
        'EUNSUPPORTED',
        `pid ${pid} is in another ${kind === 'pid' ? 'PID' : 'mount'} namespace (a container: ${theirs}, here ${ours}); run allocscope inside it (e.g. nsenter -t ${pid} -p -m, or docker exec).`,
        { pid, namespace: kind, ours, theirs },
      );
    }
  }
}

function idsOf(status: ProcStatus): { uid: number; gids: number[] } {
  const uid = Number((status.Uid ?? '').split(/\s+/)[1]);
  const gids = [Number((status.Gid ?? '').split(/\s+/)[1]), ...(status.Groups ?? '').split(/\s+/).filter(Boolean).map(Number)];
  return { uid, gids };
}

/** Whether a user may access a path with these mode bits ("r" = 4, "x" = 1). */
function permits(mode: number, owner: number, group: number, who: { uid: number; gids: number[] }, bit: number): boolean {
  if (who.uid === 0) return true; // CAP_DAC_OVERRIDE; a root target without it is not worth guessing about
  if (who.uid === owner) return (mode & (bit << 6)) !== 0;
  if (who.gids.includes(group)) return (mode & (bit << 3)) !== 0;
  return (mode & bit) !== 0;
}

/**
 * The agent library must be loadable by the target (its uid reads the file and searches every
 * directory above it) and must not be replaceable by anyone but root, the caller or the target's
 * user: whatever sits at that path runs inside the target.
 */
export function checkLibraryLoadable(pid: number, status: ProcStatus, library: string): void {
  const target = idsOf(status);
  const trusted = new Set([0, process.geteuid?.() ?? 0, target.uid]);
  const fail = (message: string) => {
    throw new AllocscopeError('EACCES', message, { pid, library });
  };
  try {
    accessSync(library, constants.R_OK);
  } catch {
    throw new AllocscopeError('EAGENT', `the agent library ${library} is missing or unreadable; build it (npm run build) or reinstall allocscope.`, { pid, library });
  }
  const parts = library.split(sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const path = sep + parts.slice(0, i).join(sep);
    const stat = statSync(path);
    const isFile = i === parts.length;
    if (!permits(stat.mode, stat.uid, stat.gid, target, isFile ? 4 : 1)) {
      fail(`pid ${pid} (uid ${target.uid}) could not ${isFile ? 'read' : 'enter'} ${path}, so it could not load ${library}; install allocscope where that user can read it.`);
    }
    if (!trusted.has(stat.uid)) {
      fail(`${path} belongs to uid ${stat.uid}, who could replace the agent that would run inside pid ${pid}; install allocscope in a directory owned by root or by you.`);
    }
    const sticky = (stat.mode & 0o1000) !== 0 && !isFile; // S_ISVTX: only owners may rename or delete entries
    if ((stat.mode & 0o022) !== 0 && !sticky) {
      fail(`${path} is writable by ${(stat.mode & 0o002) !== 0 ? 'everyone' : 'its group'}, who could replace the agent that would run inside pid ${pid}; tighten its mode (chmod go-w).`);
    }
  }
}

/** gdb on PATH (or the given path), else EUNSUPPORTED with the package to install. */
export function findGdb(explicit?: string): string {
  const candidates = explicit !== undefined ? [explicit] : (process.env.PATH ?? '/usr/bin:/bin').split(delimiter).filter(Boolean).map((dir) => join(dir, 'gdb'));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* next */
    }
  }
  throw new AllocscopeError('EUNSUPPORTED', `gdb was not found${explicit !== undefined ? ` at ${explicit}` : ' on PATH'}; attach needs it (apt-get install gdb, dnf install gdb).`, {
    searched: candidates.map((c) => dirname(c)),
  });
}

/** The socket directory the target's agent will use: its own ALLOCSCOPE_AGENT_DIR, if it has one. */
export function targetAgentDir(pid: number): string | undefined {
  try {
    const entry = readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .find((e) => e.startsWith('ALLOCSCOPE_AGENT_DIR='));
    const dir = entry?.slice('ALLOCSCOPE_AGENT_DIR='.length);
    return dir ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** True when the target was started with the agent in LD_PRELOAD (its agent is level 'agent', not 'attached'). */
export function preloadsAgent(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .some((e) => e.startsWith('LD_PRELOAD=') && e.includes('liballocscope_agent'));
  } catch {
    return false;
  }
}
