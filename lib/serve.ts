/**
 * serve(): a Node process exposes its own snapshots on a Unix socket, in the wire format of the
 * preload agent (README "Wire format"), so `profile-pid` and every agent client read full
 * allocator figures from Node targets too, plus V8's. Same rules as the agent: a 0700 directory
 * owned by this user (a symlink or someone else's directory is refused), a 0600 socket, each
 * peer's uid checked (this user or root), bounded requests, and nothing that can block the
 * service: the server is unref'd and every connection has a timeout.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, renameSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { glibc } from './allocators/glibc';
import { jemalloc } from './allocators/jemalloc';
import { liveDetection, slotNames } from './allocators/live';
import { tcmalloc } from './allocators/tcmalloc';
import { native, SAMPLE_WITH_ALLOCATOR, SAMPLE_WITH_STATUS } from './binding';
import { AllocscopeError, describe } from './errors';
import { purge } from './targets/self';

const WIRE_VERSION = 1;
const MAX_REQUEST = 4096;
const IO_TIMEOUT_MS = 2000;

export interface ServeOptions {
  /** Socket directory; default ALLOCSCOPE_AGENT_DIR or /tmp/allocscope-<euid> (where clients look). */
  dir?: string;
}

export interface ServeHandle {
  /** The socket's path: <dir>/<pid>.sock. */
  path: string;
  close(): Promise<void>;
}

let active: ServeHandle | null = null;

function trustDirectory(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new AllocscopeError('EACCES', `serve() cannot create its socket directory ${dir}: ${(error as Error).message}.`, { dir });
    }
  }
  const st = lstatSync(dir);
  const uid = process.geteuid?.() ?? 0;
  const problem = !st.isDirectory()
    ? 'it is not a directory (a symlink is never followed)'
    : st.uid !== uid
      ? `it belongs to uid ${st.uid}, not to this process's uid ${uid}`
      : (st.mode & 0o077) !== 0
        ? `its mode is ${(st.mode & 0o777).toString(8)}; only 700 keeps other users out`
        : null;
  if (problem !== null) {
    throw new AllocscopeError('EACCES', `serve() refuses the socket directory ${dir}: ${problem}. Remove it, or pass { dir } naming a directory of your own.`, { dir });
  }
}

function answer(request: Record<string, unknown>): Record<string, unknown> {
  const live = liveDetection();
  const allocator = { name: live.name, version: live.version, detectedBy: live.detectedBy, mallocLibrary: live.mallocLibrary, symbolPrefix: live.symbolPrefix };
  const head = { v: WIRE_VERSION, ok: true, op: request.op, pid: process.pid };
  switch (request.op) {
    case 'info':
      // Node always runs threads of its own: glibc is never on its single-thread paths here.
      return { ...head, agentVersion: 'node-serve', protocol: WIRE_VERSION, hostSingleThreaded: false, allocator };
    case 'snapshot': {
      const names = slotNames();
      const slots = new Float64Array(names.length);
      const time = Date.now();
      native().sampleInto(slots, live.kind, SAMPLE_WITH_ALLOCATOR | (request.detail === 'full' ? SAMPLE_WITH_STATUS : 0));
      const record: Record<string, number> = {};
      names.forEach((name, i) => {
        if (Number.isFinite(slots[i])) record[name] = slots[i];
      });
      const heap = getHeapStatistics();
      const v8 = { heapTotal: heap.total_heap_size, heapUsed: heap.used_heap_size, external: heap.external_memory, arrayBuffers: null };
      return { ...head, time, allocator, slots: record, v8 };
    }
    case 'trim': {
      const result = purge();
      return { ...head, allocator: result.allocator, action: result.action, rssBeforeBytes: result.rssBeforeBytes, rssAfterBytes: result.rssAfterBytes, durationNs: result.durationNs };
    }
    case 'stats-text': {
      if (live.name === 'jemalloc') return { ...head, format: 'jemalloc-json', text: JSON.stringify(jemalloc.statsJson()) };
      if (live.name === 'glibc') return { ...head, format: 'malloc_info-xml', text: glibc.mallocInfo().xml };
      if (live.name === 'tcmalloc') return { ...head, format: 'tcmalloc-text', text: tcmalloc.statsText() };
      return { ...head, format: 'none', text: '' };
    }
    default:
      return { v: WIRE_VERSION, ok: false, error: { code: 'EPROTO', message: 'unknown "op" (info, snapshot, trim, stats-text)' } };
  }
}

function refuse(code: string, message: string): string {
  return `${JSON.stringify({ v: WIRE_VERSION, ok: false, error: { code, message } })}\n`;
}

function handle(connection: Socket): void {
  connection.setTimeout(IO_TIMEOUT_MS, () => connection.destroy());
  connection.on('error', () => connection.destroy());
  const fd = (connection as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const peer = typeof fd === 'number' ? native().peerCredentials(fd) : null;
  const uid = process.geteuid?.() ?? 0;
  if (peer === null || (peer.uid !== uid && peer.uid !== 0)) {
    connection.end(refuse('EACCES', "only the process's own user or root may read its allocator"));
    return;
  }
  let buffered = '';
  connection.setEncoding('utf8');
  connection.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let request: unknown;
      try {
        request = JSON.parse(line);
      } catch {
        connection.write(refuse('EPROTO', 'a request is one JSON object per line'));
        continue;
      }
      if (request === null || typeof request !== 'object' || Array.isArray(request) || (request as { v?: unknown }).v !== WIRE_VERSION) {
        connection.write(refuse('EPROTO', 'requests carry "v":1 (this server speaks v1)'));
        continue;
      }
      try {
        connection.write(`${JSON.stringify(answer(request as Record<string, unknown>))}\n`);
      } catch (error) {
        const code = error instanceof AllocscopeError ? error.code : 'EAGENT';
        connection.write(refuse(code, (error as Error).message));
      }
    }
    if (buffered.length > MAX_REQUEST) {
      connection.end(refuse('EPROTO', 'request longer than 4096 bytes'));
    }
  });
}

/**
 * Serves this process's snapshots at <dir>/<pid>.sock until close() (or exit). Never keeps the
 * process alive on its own.
 */
export async function serve(options: ServeOptions = {}): Promise<ServeHandle> {
  if (options === null || typeof options !== 'object') {
    throw new AllocscopeError('EINVAL', `serve options must be an object like { dir: '/run/myapp' }; got ${describe(options)}.`);
  }
  if (options.dir !== undefined && (typeof options.dir !== 'string' || options.dir === '')) {
    throw new AllocscopeError('EINVAL', `serve({ dir }) takes a directory path; got ${describe(options.dir)}.`);
  }
  if (active !== null) throw new AllocscopeError('EINVAL', `this process already serves at ${active.path}; close() it first.`, { path: active.path });
  const dir = options.dir ?? process.env.ALLOCSCOPE_AGENT_DIR ?? `/tmp/allocscope-${process.geteuid?.() ?? 0}`;
  trustDirectory(dir);
  const path = join(dir, `${process.pid}.sock`);
  try {
    const st = lstatSync(path);
    if (!st.isSocket() || st.uid !== (process.geteuid?.() ?? 0)) {
      throw new AllocscopeError('EACCES', `serve() will not replace ${path}: it is not a socket of this user.`, { path });
    }
    unlinkSync(path); // left by an earlier process with this pid
  } catch (error) {
    if (error instanceof AllocscopeError) throw error;
  }
  const server: Server = createServer(handle);
  // bind(2) creates the socket with the umask's mode (often 0755): it is bound under a temporary
  // name, made 0600 and checked, and only then renamed to the path clients look for, so no client
  // (and no test) ever finds it with other modes. The 0700 directory already keeps others out.
  const pending = join(dir, `.${process.pid}.${randomBytes(6).toString('hex')}.sock`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new AllocscopeError('EACCES', `serve() cannot listen on ${path}: ${error.message}.`, { path })));
    server.listen(pending, () => resolve());
  });
  try {
    chmodSync(pending, 0o600);
    const st = lstatSync(pending);
    if (!st.isSocket() || (st.mode & 0o777) !== 0o600) throw new Error(`its mode is ${(st.mode & 0o777).toString(8)} after chmod`);
    renameSync(pending, path);
  } catch (error) {
    server.close();
    try {
      unlinkSync(pending);
    } catch {
      /* not created, or already renamed */
    }
    throw new AllocscopeError('EACCES', `serve() could not secure its socket ${path}: ${(error as Error).message}.`, { path });
  }
  server.unref();
  const removeSocket = () => {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  };
  process.once('exit', removeSocket);
  const serving: ServeHandle = {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        process.off('exit', removeSocket);
        active = null;
        server.close(() => resolve());
        removeSocket();
      }),
  };
  active = serving;
  return serving;
}
