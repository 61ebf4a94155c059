/**
 * A process tree read as one: Apache prefork/worker, nginx, a Node cluster, PHP-FPM.
 *
 * The root is read like any target (ProcTarget, detailed: maps, environ, gated smaps_rollup).
 * Every descendant is read at the cost of a plain process monitor (the budget of issue 4:
 * "no more CPU than pidusage", which preads /proc/PID/stat once per pid and sample):
 * - each sample: statm and the main thread's children file, kept open and pread once at offset
 *   0 (RSS, anonymous RSS), and an fstat of the task directory (the thread count: other threads'
 *   children files are read only when there are other threads);
 * - PSS, swap and lazily freed bytes from smaps_rollup through a smaps gate (default: at most
 *   once per DESCENDANT_PSS_INTERVAL_MS per process, longer for large ones), the last reading
 *   kept and reused between reads, and the reads spread over the interval rather than all in
 *   one sample. smaps_rollup walks every page table under the target's mmap_lock
 *   (references/limits.md §4): read every sample for 100 children it alone costs ~3x pidusage.
 * Descendants come from /proc/PID/task/TID/children (Linux >= 3.5), so a child forked by any
 * thread is found. The result is the root's Snapshot with the tree's sums in processBytes and
 * each process's figures under raw (tree_rss, tree_pss, tree_pss_age_ms).
 */
import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { AllocscopeError } from '../errors';
import { costClassOf, type ProcessBytes, type Snapshot } from '../snapshot';
import { checkPid, ProcFile, procInteger, procRootOf, readProcFile, type ProcFileOptions } from './files';
import { readSmapsRollup, SmapsGate, sharedSmapsGate } from './smaps-rollup';
import { maxSafePages, systemPageSize } from './statm';
import { ProcTarget } from './target';

/**
 * How often each descendant's PSS is refreshed by default, ms. smaps_rollup costs ~25x a statm
 * read per process (a page-table walk: ~80 us with its parsing for a 1.6 MiB worker on the
 * benchmark machine): at the usual 10 s, 100 children would spend ~0.8 ms/s on PSS alone, a third
 * of everything else the tree's reading costs per second; at 30 s, ~0.27 ms/s (scripts/bench/tree,
 * RESULTS.md). RSS stays fresh every sample; PSS moves with it (RSS less the shared pages' shares).
 */
export const DESCENDANT_PSS_INTERVAL_MS = 30_000;

export interface ProcTreeOptions extends ProcFileOptions {
  /**
   * The gate of every smaps_rollup read, root and descendants. Default: the shared gate for the
   * root (10 s, like any target) and, for the descendants, a gate of this tree whose interval is
   * DESCENDANT_PSS_INTERVAL_MS.
   */
  smapsGate?: SmapsGate;
  /** At most this many descendants are read (default 10,000); the rest are counted in raw.tree. */
  limit?: number;
}

/** Every descendant of `pid`, breadth first; processes that vanish meanwhile are skipped. */
export function descendants(pid: number, limit = 10_000, options: ProcFileOptions = {}): number[] {
  const root = procRootOf(options);
  const found: number[] = [];
  const queue = [pid];
  const seen = new Set(queue);
  while (queue.length > 0 && found.length < limit) {
    const parent = queue.shift() as number;
    for (const child of childrenOf(root, parent, threadsOf(root, parent))) {
      if (seen.has(child) || found.length >= limit) continue;
      seen.add(child);
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** The thread ids of `pid` ([] when it is gone). */
function threadsOf(root: string, pid: number): string[] {
  try {
    return readdirSync(`${root}/${pid}/task`);
  } catch {
    return [];
  }
}

/** The children of the given threads of `pid`, from their children files. */
function childrenOf(root: string, pid: number, threads: readonly string[], mainThreadText?: string): number[] {
  const pids: number[] = [];
  for (const task of threads) {
    let text: string;
    if (task === String(pid) && mainThreadText !== undefined) {
      text = mainThreadText;
    } else {
      try {
        text = readProcFile(pid, `task/${task}/children`, { procRoot: root });
      } catch {
        continue; // the thread ended
      }
    }
    if (text.length === 0) continue;
    for (const word of text.split(' ')) {
      const child = procInteger(word);
      if (child !== null && child > 0) pids.push(child);
    }
  }
  return pids;
}

/**
 * One descendant's open files and its last smaps_rollup reading. Each sample reads statm and the
 * main thread's children file with one pread each, and fstat()s the task directory: its link
 * count is 2 + the number of threads (proc_task_getattr, fs/proc/base.c), which tells whether
 * other threads' children files must be read too. status (RssFile/RssShmem split, VmSwap) is not
 * read per sample: generating it costs ~3x statm, and for 100 processes that alone is as much as
 * pidusage's whole read.
 */
interface Member {
  statm: number;
  children: number;
  task: number;
  /** The last smaps_rollup reading, bytes, and when it happened (performance.now() ms). */
  smaps: { pss: number | null; swap: number | null; lazyFree: number | null; atMs: number } | null;
  /** Order of first sight in this tree: spreads the members' PSS reads over the interval. */
  ordinal: number;
  /** When smaps_rollup may be tried again (performance.now() ms): the gate is only asked then. */
  smapsDueMs: number;
  /** Why PSS is unknown for this process (no permission, no smaps_rollup, over the gate's RSS limit). */
  smapsProblem: string | null;
}

/** One buffer for every pread of a tree: statm and children files are far smaller than this. */
let scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * The whole text of an open /proc file: one pread at offset 0, more only when the buffer filled
 * (a seq_file read fills the caller's buffer unless the text has ended, fs/seq_file.c, so a short
 * read is the end: a second pread only to see EOF would be one more syscall per file and sample,
 * which is what pidusage saves too). Gone processes read as ESRCH.
 */
function preadText(fd: number, pid: number): string {
  let length = 0;
  for (;;) {
    let got: number;
    try {
      got = readSync(fd, scratch, length, scratch.length - length, length);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ESRCH' || code === 'ENOENT') throw new AllocscopeError('ESRCH', `No process ${pid} (it exited).`, { pid });
      /* c8 ignore next 2 -- statm and children are world-readable; EIO and the like are passed on */
      throw error;
    }
    length += got;
    if (length < scratch.length) return scratch.toString('latin1', 0, length);
    const grown = Buffer.allocUnsafe(scratch.length * 2);
    scratch.copy(grown, 0, 0, length);
    scratch = grown;
  }
}

/** Opens statm, the main thread's children file and the task directory of `pid`, all or none. */
function openMember(root: string, pid: number): Member {
  const fds: number[] = [];
  try {
    for (const path of [`${root}/${pid}/statm`, `${root}/${pid}/task/${pid}/children`, `${root}/${pid}/task`]) fds.push(openSync(path, 'r'));
  } catch (error) {
    for (const fd of fds) closeSync(fd);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') throw new AllocscopeError('ESRCH', `No process ${pid} (it exited).`, { pid });
    /* c8 ignore next 2 -- world-readable files: EACCES only under hidepid, which hides the pid from the children file too */
    throw error;
  }
  const [statm, children, task] = fds;
  return { statm, children, task, ordinal: 0, smaps: null, smapsDueMs: 0, smapsProblem: null };
}

/** What one read found about one descendant. */
interface MemberReading {
  pid: number;
  bytes: ProcessBytes;
  /** Age of the PSS figure, ms; null when PSS is unknown. */
  pssAgeMs: number | null;
  threads: string[];
  childrenText: string;
}

/** The processBytes fields a tree sums (peakRss is not: a sum of peaks taken at different times is no peak). */
const SUMMED = ['rss', 'rssAnon', 'rssFile', 'rssShmem', 'swap', 'pss', 'lazyFree'] as const;
type SummedKey = (typeof SUMMED)[number];

/**
 * A process tree polled through /proc: the root's files and every descendant's statm, children
 * file and task directory stay open between reads, bound to the processes they were opened for (a reused
 * pid reads as a new member, never as the old one). close() when done.
 */
export class ProcTree {
  readonly pid: number;
  private readonly options: ProcTreeOptions;
  /** The root's smaps gate. */
  private readonly gate: SmapsGate;
  /** The descendants' smaps gate. */
  private readonly memberGate: SmapsGate;
  private readonly limit: number;
  private readonly procRoot: string;
  private readonly root: ProcTarget;
  /** The root's main-thread children file, kept open. */
  private readonly rootChildren: ProcFile;
  private readonly members = new Map<number, Member>();
  /** Members opened so far (their ordinals). */
  private opened = 0;
  /** The root's last smaps_rollup figures (bytes) and when they were read (performance.now() ms). */
  private rootSmaps: { pss: number; lazyFree: number | null; atMs: number } | null = null;

  /** Opens the root; throws EINVAL, ESRCH or EACCES as ProcTarget does. */
  constructor(pid: number, options: ProcTreeOptions = {}) {
    this.pid = checkPid(pid);
    this.options = { ...options };
    this.procRoot = procRootOf(options);
    this.gate = options.smapsGate ?? sharedSmapsGate;
    this.memberGate = options.smapsGate ?? new SmapsGate({ minIntervalMs: DESCENDANT_PSS_INTERVAL_MS });
    const { limit = 10_000 } = options;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new AllocscopeError('EINVAL', `the tree's process limit must be a whole number >= 0; got ${String(limit)}.`, { limit });
    }
    this.limit = limit;
    this.root = new ProcTarget(pid, { procRoot: options.procRoot, smapsGate: this.gate });
    try {
      this.rootChildren = new ProcFile(pid, `task/${pid}/children`, { procRoot: options.procRoot });
    } catch (error) {
      this.root.close();
      throw error;
    }
  }

  /** Number of descendants whose files are open now. */
  get openMembers(): number {
    return this.members.size;
  }

  /** One Snapshot of the tree (source procfs). Throws ESRCH once the root has exited. */
  read(): Snapshot {
    const inspection = this.root.inspect();
    const { snapshot: rootSnapshot, pssAgeMs: rootPssAgeMs } = this.withRootSmaps(inspection.snapshot);
    const start = process.hrtime.bigint();
    const rootThreads = inspection.status.slots['status.Threads'] ?? 1;
    const seen = new Set<number>([this.pid]);
    const readings: MemberReading[] = [];
    let smapsReads = 0;
    let skipped = 0;
    const queue: Array<{ pid: number; threads: string[]; mainText: string | undefined }> = [
      { pid: this.pid, threads: rootThreads > 1 ? threadsOf(this.procRoot, this.pid) : [String(this.pid)], mainText: this.rootChildren.read() },
    ];
    while (queue.length > 0) {
      const parent = queue.shift() as (typeof queue)[number];
      for (const child of childrenOf(this.procRoot, parent.pid, parent.threads, parent.mainText)) {
        if (seen.has(child)) continue;
        seen.add(child);
        if (readings.length >= this.limit) {
          skipped++;
          continue;
        }
        const reading = this.readMember(child);
        if (reading === null) continue;
        if (reading.smapsRead) smapsReads++;
        readings.push(reading.value);
        queue.push({ pid: child, threads: reading.value.threads, mainText: reading.value.childrenText });
      }
    }
    // Processes not met in this walk have exited (or left the tree): let their files go.
    for (const [pid, member] of this.members) {
      if (!seen.has(pid)) this.drop(pid, member);
    }
    return this.assemble(rootSnapshot, rootPssAgeMs, readings, { smapsReads, skipped, ns: Number(process.hrtime.bigint() - start) });
  }

  /** The root's PSS and lazy-free bytes: this read's, or (the gate refused) the last ones read. */
  private withRootSmaps(snapshot: Snapshot): { snapshot: Snapshot; pssAgeMs: number | null } {
    const now = performance.now();
    const { pss, lazyFree } = snapshot.processBytes;
    if (pss !== null) {
      this.rootSmaps = { pss, lazyFree, atMs: now };
      return { snapshot, pssAgeMs: 0 };
    }
    if (this.rootSmaps === null) return { snapshot, pssAgeMs: null };
    return {
      snapshot: { ...snapshot, processBytes: { ...snapshot.processBytes, pss: this.rootSmaps.pss, lazyFree: lazyFree ?? this.rootSmaps.lazyFree } },
      pssAgeMs: Math.round(now - this.rootSmaps.atMs),
    };
  }

  /** Reads one descendant (opening it on first sight); null when it is gone. */
  private readMember(pid: number): { value: MemberReading; smapsRead: boolean } | null {
    let member = this.members.get(pid);
    try {
      if (member === undefined) {
        member = openMember(this.procRoot, pid);
        member.ordinal = this.opened++;
        this.members.set(pid, member);
      }
      // statm: size resident shared text lib data dt, in pages (fs/proc/array.c proc_pid_statm).
      const fields = preadText(member.statm, pid).split(' ', 3);
      if (fields.length < 3) throw new AllocscopeError('ESRCH', `No process ${pid} (its statm reads empty: it exited).`, { pid });
      const page = systemPageSize();
      // A count whose bytes a double cannot hold is unknown (null), never a wrong number.
      const most = maxSafePages(page);
      const [size, resident, shared] = fields.map((field) => procInteger(field, most));
      const childrenText = preadText(member.children, pid);
      const threadCount = fstatSync(member.task).nlink - 2;
      const threads = threadCount > 1 ? threadsOf(this.procRoot, pid) : [String(pid)];
      // size 0: a zombie (exited, not yet reaped: prefork servers recycling children show them
      // briefly), which has no memory left: its PSS is 0, known, and keeps the tree's sum known.
      const zombie = size === 0;
      const smapsRead = !zombie && resident !== null && resident > 0 && this.refreshSmaps(pid, member, resident * page);
      const smaps = zombie ? { pss: 0, swap: 0, lazyFree: 0, atMs: performance.now() } : member.smaps;
      return {
        smapsRead,
        value: {
          pid,
          bytes: {
            rss: resident === null ? null : resident * page,
            // statm's shared = RssFile + RssShmem (Linux >= 4.5)
            rssAnon: resident === null || shared === null ? null : (resident - shared) * page,
            rssFile: null, // the file/shmem split is in status only, not read per sample (see Member)
            rssShmem: null,
            swap: smaps?.swap ?? null,
            peakRss: null,
            pss: smaps?.pss ?? null,
            lazyFree: smaps?.lazyFree ?? null,
          },
          pssAgeMs: smaps === null ? null : Math.round(performance.now() - smaps.atMs),
          threads,
          childrenText,
        },
      };
    } catch (error) {
      if (member !== undefined) this.drop(pid, member);
      if (error instanceof AllocscopeError && error.code === 'ESRCH') return null; // exited meanwhile
      /* c8 ignore next 2 -- status and statm are world-readable; EACCES only under hidepid, which also hides the pid from the children file */
      if (error instanceof AllocscopeError && error.code === 'EACCES') return null;
      throw error;
    }
  }

  /**
   * Reads smaps_rollup of a member when it is due and the gate allows; true when it was read. The
   * gate is asked only when the member's last decision said a read could pass (smapsDueMs), so
   * the samples between reads cost nothing here.
   */
  private refreshSmaps(pid: number, member: Member, rssBytes: number): boolean {
    const now = performance.now();
    if (now < member.smapsDueMs) return false;
    const retry = this.memberGate.policy.minIntervalMs;
    try {
      const reading = readSmapsRollup(pid, { procRoot: this.options.procRoot, gate: this.memberGate, rssBytes });
      if (reading.slots === null) {
        member.smapsDueMs = now + (reading.decision.retryInMs ?? retry);
        if (member.smaps === null) member.smapsProblem = reading.decision.reason;
        return false;
      }
      const first = member.smaps === null;
      const kb = (key: string) => (reading.slots?.[`smaps_rollup.${key}`] === undefined ? null : (reading.slots[`smaps_rollup.${key}`] as number) * 1024);
      member.smaps = { pss: kb('Pss'), swap: kb('Swap'), lazyFree: kb('LazyFree'), atMs: now };
      // The first read of every member happens at once (PSS from the first sample on); after it,
      // each member's next read is put off by a different fraction of an interval (golden-ratio
      // steps), so a tree's reads spread over the interval instead of all landing in one sample.
      const spread = first ? (member.ordinal * 0.618_034) % 1 : 0;
      member.smapsDueMs = now + reading.decision.intervalMs * (1 + spread);
      member.smapsProblem = null;
      return true;
    } catch (error) {
      const code = (error as AllocscopeError).code;
      if (code === 'EACCES' || code === 'EUNSUPPORTED') {
        // Retried at the gate's interval: a child may still be changing uid after fork.
        member.smapsDueMs = now + retry;
        member.smapsProblem = (error as Error).message;
        return false;
      }
      throw error;
    }
  }

  private drop(pid: number, member: Member): void {
    for (const fd of [member.statm, member.children, member.task]) closeSync(fd);
    this.members.delete(pid);
    this.memberGate.forget(pid);
  }

  private assemble(root: Snapshot, rootPssAgeMs: number | null, readings: readonly MemberReading[], walk: { smapsReads: number; skipped: number; ns: number }): Snapshot {
    // One pass (this runs every sample over every process): per-process maps and the sums, a
    // sum being null as soon as one process's figure is unknown.
    const rss: Record<string, number> = {};
    const pss: Record<string, number> = {};
    const pssAge: Record<string, number> = {};
    const totals = {} as Record<SummedKey, number | null>;
    for (const key of SUMMED) totals[key] = root.processBytes[key];
    const add = (pid: number, bytes: ProcessBytes) => {
      for (const key of SUMMED) {
        const value = bytes[key];
        totals[key] = value === null || totals[key] === null ? null : (totals[key] as number) + value;
      }
      if (bytes.rss !== null) rss[pid] = bytes.rss;
      if (bytes.pss !== null) pss[pid] = bytes.pss;
    };
    if (root.processBytes.rss !== null) rss[root.pid] = root.processBytes.rss;
    if (root.processBytes.pss !== null) pss[root.pid] = root.processBytes.pss;
    let oldestMs = rootPssAgeMs ?? 0;
    if (rootPssAgeMs !== null) pssAge[root.pid] = rootPssAgeMs;
    const unknownPss: number[] = [];
    for (const r of readings) {
      add(r.pid, r.bytes);
      if (r.pssAgeMs === null) unknownPss.push(r.pid);
      else {
        pssAge[r.pid] = r.pssAgeMs;
        oldestMs = Math.max(oldestMs, r.pssAgeMs);
      }
    }
    const problems = [...new Set(unknownPss.map((pid) => this.members.get(pid)?.smapsProblem).filter((p): p is string => typeof p === 'string'))];
    const pssNote =
      unknownPss.length === 0
        ? `PSS per descendant from smaps_rollup at most once per ${Math.round(this.memberGate.policy.minIntervalMs / 1000)} s each (the oldest figure is ${Math.round(oldestMs / 1000)} s old)`
        : `PSS unknown for ${unknownPss.length} of ${readings.length} descendants${problems.length > 0 ? `: ${problems.slice(0, 2).join('; ')}` : ''}`;
    const processes = readings.length + 1;
    return {
      ...root,
      levelNote: `a tree of ${processes} processes read through /proc (sums below; per-process figures under raw.tree_rss and raw.tree_pss); ${pssNote}${root.levelNote ? `; ${root.levelNote}` : ''}`,
      processBytes: {
        rss: totals.rss,
        rssAnon: totals.rssAnon,
        rssFile: totals.rssFile,
        rssShmem: totals.rssShmem,
        swap: totals.swap,
        peakRss: null, // a sum of peaks taken at different times is no peak
        pss: totals.pss,
        lazyFree: totals.lazyFree,
      },
      cost: { ns: root.cost.ns + walk.ns, class: costClassOf(root.cost.class, root.cost.ns + walk.ns) },
      raw: {
        ...root.raw,
        tree: { processes, smapsReads: walk.smapsReads, notRead: walk.skipped, walkNs: walk.ns },
        tree_rss: rss,
        tree_pss: pss,
        tree_pss_age_ms: pssAge,
      },
    };
  }

  /** Closes every open file (root and descendants); idempotent. */
  close(): void {
    this.root.close();
    this.rootChildren.close();
    for (const [pid, member] of this.members) this.drop(pid, member);
  }
}

/** Opens the tree rooted at `pid` for polling (see ProcTree). */
export function openProcTree(pid: number, options: ProcTreeOptions = {}): ProcTree {
  return new ProcTree(pid, options);
}

/** The tree rooted at `pid` as one Snapshot, read once (files opened and closed). */
export function readProcTree(pid: number, options: ProcTreeOptions = {}): Snapshot {
  const tree = new ProcTree(pid, options);
  try {
    return tree.read();
  } finally {
    tree.close();
  }
}
