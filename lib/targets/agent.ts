/**
 * The Agent target: a process that runs liballocscope_agent.so (LD_PRELOAD) or a Node process
 * that called serve(), read over its Unix socket in the wire format (README "Wire format").
 */
import { existsSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { assembleSnapshot } from '../assemble';
import { AllocscopeError, type AllocscopeErrorCode } from '../errors';
import { sampleFromRecord } from '../sample';
import type { AllocatorName, Snapshot, V8Bytes } from '../snapshot';

export const WIRE_VERSION = 1;
/** A response larger than this is refused (stats-text of 64 jemalloc arenas is ~2.6 MB escaped x6). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Absolute path of the preload agent, for LD_PRELOAD. */
export function agentLibraryPath(): string {
  // lib/targets/agent.ts and dist/targets/agent.js are both two levels below the package root.
  return join(__dirname, '..', '..', 'build', 'Release', 'liballocscope_agent.so');
}

/** Real and effective uid, and the parent pid, of a process (from /proc/PID/status). */
function identity(pid: number): { uids: number[]; ppid: number | null } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    const ppid = /^PPid:\s+(\d+)/m.exec(status);
    return { uids: uid === null ? [] : [Number(uid[2]), Number(uid[1])], ppid: ppid === null ? null : Number(ppid[1]) };
  } catch {
    return { uids: [], ppid: null };
  }
}

export interface AgentOptions {
  /** Socket directory; default ALLOCSCOPE_AGENT_DIR or /tmp/allocscope-<uid>. */
  dir?: string;
  /** Bound on connect + request + response, ms (default 2000). */
  timeoutMs?: number;
}

/**
 * Where the agent of `pid` keeps its socket. The agent names its directory by its euid when it
 * starts (or, after fork, when the child starts); servers that fork workers and then drop
 * privileges (nginx, Apache) leave a worker's socket under the parent's uid. So the candidates are
 * the target's effective and real uid, then its parent's effective uid; the first with a socket
 * wins, else the first candidate.
 */
export function agentSocketPath(pid: number, options: AgentOptions = {}): string {
  const configured = options.dir ?? process.env.ALLOCSCOPE_AGENT_DIR;
  if (configured !== undefined && configured !== '') return join(configured, `${pid}.sock`);
  const own = identity(pid);
  const parentUid = own.ppid !== null && own.ppid > 0 ? identity(own.ppid).uids[0] : undefined;
  const uids = [...new Set([...own.uids, ...(parentUid !== undefined ? [parentUid] : []), process.geteuid?.() ?? 0])];
  const candidates = uids.map((uid) => join(`/tmp/allocscope-${uid}`, `${pid}.sock`));
  return candidates.find((path) => existsSync(path)) ?? candidates[0];
}

/** True when a socket file for this pid exists (the agent may still be gone: a stale socket). */
export function agentSocketExists(pid: number, options: AgentOptions = {}): boolean {
  return existsSync(agentSocketPath(pid, options));
}

/**
 * A killed process cannot remove its socket (destructors do not run on SIGKILL). Once its pid is
 * gone, the file is only litter: remove it, if it is a socket of our own.
 */
function removeIfStale(path: string, pid: number): void {
  try {
    if (existsSync(`/proc/${pid}`)) return;
    const st = lstatSync(path);
    if (st.isSocket() && st.uid === process.geteuid?.()) unlinkSync(path);
  } catch {
    /* nothing to tidy */
  }
}

function checkPid(pid: unknown): number {
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) {
    throw new AllocscopeError('EINVAL', `a pid is a positive whole number; got ${String(pid)}.`, { pid });
  }
  return pid;
}

/** One request, one response line. Rejects with EAGENT, EACCES, ETIMEDOUT or EPROTO. */
export function agentRequest(pid: number, request: Record<string, unknown>, options: AgentOptions = {}): Promise<Record<string, unknown>> {
  checkPid(pid);
  const path = agentSocketPath(pid, options);
  const timeoutMs = options.timeoutMs ?? 2000;
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (code: AllocscopeErrorCode, message: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new AllocscopeError(code, message, { pid, path }));
    };
    const timer = setTimeout(() => fail('ETIMEDOUT', `the agent of pid ${pid} did not answer within ${timeoutMs} ms.`), timeoutMs);
    timer.unref();
    socket.on('connect', () => socket.write(`${JSON.stringify({ v: WIRE_VERSION, ...request })}\n`));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.code === 'ENOENT') {
        fail('EAGENT', `no allocscope agent socket for pid ${pid} at ${path}. Start the process with LD_PRELOAD=${agentLibraryPath()} (npx allocscope agent-path), or call serve() in a Node process.`);
      } else if (error.code === 'ECONNREFUSED') {
        removeIfStale(path, pid);
        fail('EAGENT', `the socket ${path} is stale: no agent is listening for pid ${pid} (the process ended, or was killed).`);
      } else if (error.code === 'EACCES' || error.code === 'EPERM') {
        fail('EACCES', `not allowed to reach the agent of pid ${pid} (${path}): only its own user or root may.`);
      } else {
        fail('EAGENT', `the agent of pid ${pid} could not be reached: ${error.message}.`);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) return fail('EPROTO', `the agent of pid ${pid} sent more than ${MAX_RESPONSE_BYTES} bytes.`);
      const newline = chunk.indexOf(10);
      if (newline < 0) return;
      clearTimeout(timer);
      const line = Buffer.concat(chunks).toString('utf8');
      let response: Record<string, unknown>;
      try {
        response = JSON.parse(line.slice(0, line.indexOf('\n'))) as Record<string, unknown>;
      } catch {
        return fail('EPROTO', `the peer at ${path} did not answer in the allocscope wire format.`);
      }
      if (response === null || typeof response !== 'object' || response.v !== WIRE_VERSION) {
        return fail('EPROTO', `the peer at ${path} speaks another protocol version (${String((response as { v?: unknown })?.v)}).`);
      }
      if (response.ok !== true) {
        const error = (response.error ?? {}) as { code?: string; message?: string };
        const known: AllocscopeErrorCode[] = ['EACCES', 'EPROTO', 'ENOALLOCATOR', 'EAGENT', 'EINVAL', 'EUNSUPPORTED'];
        const code = known.includes(error.code as AllocscopeErrorCode) ? (error.code as AllocscopeErrorCode) : 'EAGENT';
        return fail(code, `the agent of pid ${pid} refused: ${error.message ?? 'no reason given'}.`);
      }
      settled = true;
      socket.end();
      resolve(response);
    });
    socket.on('close', () => fail('EPROTO', `the agent of pid ${pid} closed the connection without an answer.`));
  });
}

interface WireAllocator {
  name: string;
  version: string;
  detectedBy: string;
}

function isV8Bytes(value: unknown): value is V8Bytes {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return ['heapTotal', 'heapUsed', 'external', 'arrayBuffers'].every((k) => v[k] === null || (typeof v[k] === 'number' && (v[k] as number) >= 0));
}

/** A Snapshot of another process through its agent (level 'agent'). */
export async function readAgentSnapshot(pid: number, options: AgentOptions & { detail?: 'summary' | 'full' } = {}): Promise<Snapshot> {
  const start = process.hrtime.bigint();
  const response = await agentRequest(pid, { op: 'snapshot', detail: options.detail ?? 'summary' }, options);
  const slots = (response.slots ?? {}) as Record<string, unknown>;
  const allocator = (response.allocator ?? {}) as WireAllocator;
  return assembleSnapshot({
    sample: sampleFromRecord(Object.keys(slots), slots),
    pid,
    time: typeof response.time === 'number' ? response.time : Date.now(),
    source: 'agent',
    level: 'agent',
    levelNote: null,
    allocator: {
      name: (allocator.name ?? 'unknown') as AllocatorName,
      version: allocator.version ? allocator.version : null,
      detectedBy: allocator.detectedBy ?? 'reported by the agent',
    },
    // A Node process's serve() adds V8's figures; the C agent has none.
    v8Bytes: isV8Bytes(response.v8) ? response.v8 : null,
    costNs: Number(process.hrtime.bigint() - start),
  });
}

/**
 * Asks the target's agent to release free memory the allocator's way; RSS before/after.
 * EUNSUPPORTED from a single-threaded glibc host the agent keeps on glibc's lock-free paths
 * (its info says hostSingleThreaded): malloc_trim from the agent's thread would race the host.
 */
export async function agentTrim(pid: number, pad = 0, options: AgentOptions = {}): Promise<Record<string, unknown>> {
  return agentRequest(pid, { op: 'trim', pad }, options);
}
