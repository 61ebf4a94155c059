/**
 * The Proc target: any pid, read through /proc only (DESIGN.md "Targets and insight levels").
 *
 * proc-basic: status + statm, readable by any user, ~10-30 us. proc-detailed adds maps (region
 * classes, arena heaps, the allocator library), environ (LD_PRELOAD, MALLOC_*) and a gated
 * smaps_rollup (PSS, swap, lazy-free), which need the target's uid or CAP_SYS_PTRACE. The
 * allocator is named from maps and environ; its books (allocated, free, retained bytes) are
 * never guessed: every allocator byte field is null at these levels.
 */
import { assembleSnapshot } from '../assemble';
import { AllocscopeError, describe } from '../errors';
import { sampleFromRecord } from '../sample';
import type { AllocatorIdentity, InsightLevel, Snapshot } from '../snapshot';
import { preloadedLibraries, readAllocatorEnvironment } from './environ';
import { checkPid, ProcFile, type ProcFileOptions } from './files';
import { mapsSlots, readMaps, type MapsSummary } from './maps';
import { readSmapsRollup, type SmapsGate, type SmapsGateDecision } from './smaps-rollup';
import { parseStatm, readStatm, systemPageSize } from './statm';
import { parseStatus, readStatus, type ProcStatus } from './status';

export interface ProcTargetOptions extends ProcFileOptions {
  /**
   * 'detailed' (default): also maps, environ and smaps_rollup where permitted (maps costs
   * 15 us for a small process, ~0.3 ms for Node, ~11 ms at 60k mappings). 'basic': status and
   * statm only.
   */
  detail?: 'basic' | 'detailed';
  /** The smaps_rollup gate (default: the shared one, lib/proc/smaps-rollup.ts). */
  smapsGate?: SmapsGate;
  /** Read smaps_rollup even above the gate's RSS limit (its interval still applies). */
  forceSmaps?: boolean;
}

export interface ProcInspection {
  snapshot: Snapshot;
  /** status as parsed (name, state, uid, and the slots in snapshot.raw.status). */
  status: ProcStatus;
  /** The maps classifier's result; null when not read (basic detail, no permission, no memory). */
  maps: MapsSummary | null;
  /** The allocator variables of the target's environment (never any other); null when not read. */
  environment: Record<string, string> | null;
  /** What the smaps gate decided; null when smaps_rollup was not attempted. */
  smaps: SmapsGateDecision | null;
}

/** The agent this package will ship (native/agent/); named here so every note says the same. */
const AGENT_HINT =
  "the allocator's own books (allocated, free, retained bytes) are not visible from /proc: they need the agent level " +
  '(start the process with LD_PRELOAD=liballocscope_agent.so, or call serve() in a Node process)';

function detailOf(options: ProcTargetOptions): boolean {
  if (typeof options !== 'object' || options === null) {
    throw new AllocscopeError('EINVAL', `procfs target options must be an object like { detail: 'basic' }; got ${describe(options)}.`);
  }
  const { detail = 'detailed' } = options;
  if (detail !== 'basic' && detail !== 'detailed') {
    throw new AllocscopeError('EINVAL', `procfs target detail must be 'basic' or 'detailed'; got ${describe(detail)}.`, { detail });
  }
  return detail === 'detailed';
}

/**
 * Which allocator serves malloc, as far as maps and environ tell, with the evidence. From
 * outside a library can be seen loaded, not seen serving malloc: detectedBy says which it is.
 */
export function inferAllocator(maps: MapsSummary | null, environment: Readonly<Record<string, string>> | null, whyNoMaps = 'maps was not read'): AllocatorIdentity {
  const identity = (name: AllocatorIdentity['name'], detectedBy: string): AllocatorIdentity => ({ name, version: null, detectedBy });
  if (maps === null) return identity('unknown', `${whyNoMaps}, so the loaded libraries are unknown`);
  const preloads = preloadedLibraries(environment ?? {});
  const isPreloaded = (path: string) => preloads.some((entry) => sameLibrary(path, entry));
  const alternatives = maps.allocatorLibraries.filter((library) => library.name !== 'glibc' && library.name !== 'musl');
  const mappedPreloads = preloads.filter((entry) => maps.sharedObjects.some((path) => sameLibrary(path, entry)));
  const missing = preloads.filter((entry) => !mappedPreloads.includes(entry));
  const missingNote = missing.length > 0 ? `; LD_PRELOAD also names ${missing.join(', ')}, which is not mapped (wrong path, or the loader skipped it)` : '';

  const preloaded = alternatives.find((library) => isPreloaded(library.path));
  if (preloaded !== undefined) {
    return identity(preloaded.name, `${preloaded.path} is mapped and named in LD_PRELOAD${missingNote}`);
  }
  if (alternatives.length === 1) {
    const [only] = alternatives;
    return identity(only.name, `${only.path} is mapped (linked or dlopen'ed, not preloaded: it serves malloc if it exports it unprefixed)${missingNote}`);
  }
  if (alternatives.length > 1) {
    return identity('unknown', `several allocator libraries are mapped (${alternatives.map((l) => l.path).join(', ')}) and none is in LD_PRELOAD${missingNote}`);
  }
  const libc = maps.allocatorLibraries.find((library) => library.name === 'musl') ?? maps.allocatorLibraries.find((library) => library.name === 'glibc');
  if (libc !== undefined) {
    return identity(libc.name, `${libc.path} is mapped and no jemalloc, tcmalloc or mimalloc library is${missingNote}`);
  }
  return identity('unknown', `no C library is mapped: a static binary (its allocator is compiled in and cannot be named from /proc)${missingNote}`);
}

/**
 * Whether a mapped file is what an LD_PRELOAD entry names. maps shows the file the loader
 * opened after following symlinks (libtcmalloc_minimal.so.4 -> .so.4.5.10), and an entry may be
 * a bare name looked up in the library path, so the base names are compared, version suffixes
 * allowed.
 */
function sameLibrary(mappedPath: string, entry: string): boolean {
  const mapped = mappedPath.slice(mappedPath.lastIndexOf('/') + 1);
  const named = entry.slice(entry.lastIndexOf('/') + 1);
  return mappedPath === entry || mapped === named || mapped.startsWith(`${named}.`);
}

/** Why the kernel's ptrace read check (PTRACE_MODE_READ_FSCREDS) refused this process. */
function whyDenied(status: ProcStatus): string {
  const ours = process.getuid?.();
  if (status.uid !== null && status.uid.real === ours && status.uid.effective === ours) {
    return `the process runs as our uid (${ours}) but is not dumpable (setuid/setcap binary or PR_SET_DUMPABLE 0), which needs CAP_SYS_PTRACE`;
  }
  const uid = status.uid === null ? 'unknown' : String(status.uid.real);
  return `they need the target's uid (${uid}; this process runs as ${ours}) or CAP_SYS_PTRACE`;
}

/** Where the basic level's two files come from: opened per read, or kept open (ProcTarget). */
interface BasicFiles {
  status(): ProcStatus;
  statm(): Record<string, number>;
}

/** Reads `pid` through /proc once: the Snapshot plus what the detailed readers found. */
export function inspectProcTarget(pid: number, options: ProcTargetOptions = {}): ProcInspection {
  checkPid(pid);
  const detailed = detailOf(options);
  return inspectWith(pid, options, detailed, { status: () => readStatus(pid, options), statm: () => readStatm(pid, options) });
}

function inspectWith(pid: number, options: ProcTargetOptions, detailed: boolean, basicFiles: BasicFiles): ProcInspection {
  const start = process.hrtime.bigint();
  const time = Date.now();
  // Basic level: status and statm are world-readable, so EACCES here (hidepid=1) is an error.
  const status = basicFiles.status();
  const statm = basicFiles.statm();
  const monotonicNs = Number(process.hrtime.bigint());

  let maps: MapsSummary | null = null;
  let environment: Record<string, string> | null = null;
  let smaps: SmapsGateDecision | null = null;
  let smapsSlots: Record<string, number> | null = null;
  let levelNote: string;
  let whyNoMaps = 'maps was not read';

  if (!detailed) {
    levelNote = "detail 'basic' was asked for: maps, environ and smaps_rollup were not read";
  } else if (status.state === 'Z' || statm['statm.size'] === 0) {
    levelNote = status.state === 'Z' ? `process ${pid} is a zombie (exited, not yet reaped by its parent ${status.ppid}): it has no memory left to read` : `process ${pid} has no address space (a kernel thread): there is no user memory to read`;
    whyNoMaps = 'the process has no address space';
  } else {
    try {
      maps = readMaps(pid, options);
      environment = readAllocatorEnvironment(pid, options);
      const reading = readSmapsRollup(pid, {
        ...options,
        gate: options.smapsGate,
        force: options.forceSmaps,
        rssBytes: statm['statm.resident'] * systemPageSize(),
        vmaCount: maps.regions,
      });
      smaps = reading.decision;
      smapsSlots = reading.slots;
      levelNote = reading.slots !== null ? AGENT_HINT : (reading.decision.reason as string);
    } catch (error) {
      const code = (error as AllocscopeError).code;
      if (code === 'EACCES') {
        levelNote = `smaps_rollup, maps and environ are not readable: ${whyDenied(status)} (EACCES)`;
        whyNoMaps = 'maps is not readable (EACCES)';
      } else if (code === 'EUNSUPPORTED') {
        levelNote = 'smaps_rollup does not exist on this kernel (Linux >= 4.14 has it): PSS and swap are unknown';
      } else {
        throw error;
      }
    }
  }

  const level: InsightLevel = maps !== null && environment !== null && smapsSlots !== null ? 'proc-detailed' : 'proc-basic';
  const record: Record<string, number> = {
    monotonicNs,
    pageSize: systemPageSize(),
    ...status.slots,
    ...statm,
    ...(smapsSlots ?? {}),
    ...(maps !== null ? mapsSlots(maps) : {}),
  };
  const snapshot = assembleSnapshot({
    sample: sampleFromRecord(Object.keys(record), record),
    pid,
    time,
    source: 'procfs',
    level,
    levelNote,
    allocator: inferAllocator(maps, environment, whyNoMaps),
    v8Bytes: null,
    costNs: Number(process.hrtime.bigint() - start),
    extraCost: smapsSlots !== null ? 'expensive' : undefined,
  });
  return { snapshot, status, maps, environment, smaps };
}

/**
 * One Snapshot of any process through /proc (schema v1, source 'procfs'). Throws EINVAL for a
 * bad pid, ESRCH when there is no such process, EACCES when even status is unreadable (procfs
 * mounted with hidepid); a deeper level that is not permitted is said in levelNote instead.
 */
export function readProcTarget(pid: number, options: ProcTargetOptions = {}): Snapshot {
  return inspectProcTarget(pid, options).snapshot;
}

/**
 * A pid polled through /proc, with status and statm kept open (pread at offset 0 on each read):
 * cheaper than readProcTarget per sample, and bound to the process it was opened for, so a
 * reused pid reads as ESRCH instead of as a stranger's memory. close() when done.
 */
export class ProcTarget {
  readonly pid: number;
  private readonly options: ProcTargetOptions;
  private readonly detailed: boolean;
  private readonly statusFile: ProcFile;
  private readonly statmFile: ProcFile;

  /** Opens the target's status and statm; throws EINVAL, ESRCH or EACCES. */
  constructor(pid: number, options: ProcTargetOptions = {}) {
    this.pid = checkPid(pid);
    this.detailed = detailOf(options);
    this.options = { ...options };
    this.statusFile = new ProcFile(pid, 'status', options);
    try {
      this.statmFile = new ProcFile(pid, 'statm', options);
    } catch (error) {
      this.statusFile.close();
      throw error;
    }
  }

  /** One reading: throws ESRCH once the process has exited. */
  inspect(): ProcInspection {
    return inspectWith(this.pid, this.options, this.detailed, {
      status: () => parseStatus(this.statusFile.read()),
      statm: () => parseStatm(this.statmFile.read()),
    });
  }

  /** One Snapshot (schema v1, source 'procfs'). */
  read(): Snapshot {
    return this.inspect().snapshot;
  }

  /** Closes status and statm; idempotent. Reads after it throw EINVAL. */
  close(): void {
    this.statusFile.close();
    this.statmFile.close();
  }
}

/** Opens `pid` for polling (see ProcTarget). */
export function openProcTarget(pid: number, options: ProcTargetOptions = {}): ProcTarget {
  return new ProcTarget(pid, options);
}
