import t from 'tap';
import fc from 'fast-check';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import schema from '../../schema/snapshot.v1.json';
import { agentLibraryPath, agentRequest, agentSocketExists, agentSocketPath, agentTrim, readAgentSnapshot } from '../../lib/targets/agent';
import { ALLOCATOR_LIBRARIES } from '../../lib/allocators/libraries';
import { AllocscopeError } from '../../lib/errors';
import { PRELOADABLE, skipUnlessInstalled } from '../helpers/child';
import { ab, nginxSkip, startNginx } from '../helpers/nginx';
import { sleep, startWorkload, waitFor, type Workload } from '../helpers/workload';

const validate = new Ajv2020().compile(schema);
const running: Workload[] = [];
t.teardown(() => running.forEach((w) => w.stop()));

async function start(args: string[], options: Parameters<typeof startWorkload>[1] = {}): Promise<Workload> {
  const workload = await startWorkload(args, options);
  running.push(workload);
  return workload;
}

interface SingleHost {
  pid: number;
  firstLine: string;
  /** SIGUSR1: the host stops churning and reports its own mallinfo2, then waits. */
  pauseAndReport(): Promise<Record<string, number>>;
  /** SIGUSR2: the host churns 200 ms more and exits. */
  finish(): Promise<{ code: number | null; lastLine: string }>;
}

/** test/fixtures/single_host.c under the agent (glibc), its stdout read line by line. */
async function startSingleHost(env: Record<string, string>, args: string[] = []): Promise<SingleHost> {
  const binary = join(__dirname, '..', '..', 'build', 'Release', 'single_host');
  const child = spawn(binary, ['30', ...args], { env: { ...process.env, ...env, LD_PRELOAD: agentLibraryPath() }, stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = child.pid as number;
  t.teardown(() => child.kill('SIGKILL'));
  const lines: string[] = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (!(await waitFor(() => lines.length > 0 && agentSocketExists(pid), 5000))) throw new Error('single_host did not start');
  return {
    pid,
    firstLine: lines[0],
    async pauseAndReport() {
      child.kill('SIGUSR1');
      if (!(await waitFor(() => lines.some((l) => l.startsWith('mallinfo2 ')), 5000))) throw new Error('no mallinfo2 report');
      return JSON.parse((lines.find((l) => l.startsWith('mallinfo2 ')) as string).slice('mallinfo2 '.length)) as Record<string, number>;
    },
    async finish() {
      child.kill('SIGUSR2');
      const code = await exited;
      return { code, lastLine: lines[lines.length - 1] ?? '' };
    },
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Sends raw bytes on a fresh connection and collects the reply lines. */
function rawExchange(path: string, payload: string, expectLines: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = '';
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk) => {
      text += chunk;
      if (text.split('\n').length - 1 >= expectLines) {
        socket.end();
        resolve(text.split('\n').slice(0, expectLines));
      }
    });
    socket.on('error', reject);
    setTimeout(() => reject(new Error('no reply')), 3000).unref();
  });
}

t.test('agent-path names a built shared library', async (t) => {
  t.ok(existsSync(agentLibraryPath()), agentLibraryPath());
});

for (const name of PRELOADABLE) {
  t.test(`${name}: snapshots from inside a C process through the agent`, { skip: skipUnlessInstalled(name) }, async (t) => {
    const w = await start(['leak', '65536', '10', '0'], { allocator: name });
    t.ok(await waitFor(() => agentSocketExists(w.pid), 2000), 'socket appears');
    const first = await readAgentSnapshot(w.pid);
    await sleep(400);
    const second = await readAgentSnapshot(w.pid, { detail: 'full' });
    t.equal(first.allocator.name, name, first.allocator.detectedBy);
    t.equal(first.source, 'agent');
    t.equal(first.level, 'agent');
    t.equal(first.pid, w.pid);
    t.ok(validate(first) && validate(second), JSON.stringify(validate.errors));
    t.ok((second.processBytes.rss ?? 0) > (first.processBytes.rss ?? 0), 'RSS grows with the leak');
    t.not(second.processBytes.rssFile, null, "detail 'full' reads status");
    if (name !== 'mimalloc') {
      const grown = (second.allocatorBytes.allocated ?? 0) - (first.allocatorBytes.allocated ?? 0);
      // 64 KiB every 10 ms for 400 ms: ~2.5 MiB; at least 1 MiB even on a slow machine.
      t.ok(grown > 1048576, `allocated grew ${grown} bytes`);
    }
    const info = await agentRequest(w.pid, { op: 'info' });
    t.equal((info.allocator as { name: string }).name, name);
    if (name === 'glibc') {
      // A single-threaded glibc host: the agent keeps it on glibc's lock-free paths, so it refuses
      // what would take the arena locks or malloc from its own thread (tested further below).
      await t.rejects(agentTrim(w.pid), { code: 'EUNSUPPORTED', message: /single-threaded.*ALLOCSCOPE_AGENT_SINGLE_THREADED=0/ });
      await t.rejects(agentRequest(w.pid, { op: 'stats-text' }), { code: 'EUNSUPPORTED' });
      return;
    }
    const trim = await agentTrim(w.pid);
    t.equal(typeof trim.rssBeforeBytes, 'number');
    t.match(String(trim.action), /trim|purge|Release|collect/);
    const stats = await agentRequest(w.pid, { op: 'stats-text' });
    if (name === 'jemalloc') t.ok(JSON.parse(String(stats.text)).jemalloc, 'jemalloc stats JSON');
    if (name === 'tcmalloc') t.match(String(stats.text), /MALLOC:/);
  });
}

t.test('glibc, ALLOCSCOPE_AGENT_SINGLE_THREADED=0 or a host with threads: trim and malloc_info through the agent', async (t) => {
  for (const [label, args, env] of [
    ['single-threaded host, opted out', ['leak', '65536', '10', '0'], { ALLOCSCOPE_AGENT_SINGLE_THREADED: '0' }],
    ['host with 2 threads of its own', ['fragment', '2', '10', '0'], {}],
  ] as const) {
    const w = await start([...args], { allocator: 'glibc', env });
    t.ok(await waitFor(() => agentSocketExists(w.pid), 2000), `${label}: socket appears`);
    await sleep(100); // the fragment workload starts its threads
    const trim = await agentTrim(w.pid);
    t.match(String(trim.action), /^malloc_trim\(0\)$/, `${label}: trim answered`);
    const stats = await agentRequest(w.pid, { op: 'stats-text' });
    t.match(String(stats.text), /^<malloc version="1">/, `${label}: malloc_info answered`);
    const snapshot = await readAgentSnapshot(w.pid);
    t.ok((snapshot.allocatorBytes.allocated ?? 0) > 0, `${label}: snapshots as always`);
    w.stop();
  }
});

t.test('glibc single-threaded host: the agent leaves it single-threaded, and reads exactly what mallinfo2 reads', async (t) => {
  // single_host (test/fixtures/single_host.c) prints __libc_single_threaded as main() sees it,
  // then churns malloc/free; on SIGUSR1 it stops churning, prints its own mallinfo2 and waits
  // for SIGUSR2 to go on. Meanwhile the test reads snapshots through the agent as fast as it can.
  const host = await startSingleHost({});
  t.equal(host.firstLine, 'single 1', '__libc_single_threaded is still true in main(): glibc keeps its lock-free malloc');
  t.equal((await agentRequest(host.pid, { op: 'info' })).hostSingleThreaded, true, 'info says so');
  let reads = 0;
  const end = Date.now() + 2000;
  while (Date.now() < end) {
    const snapshot = await readAgentSnapshot(host.pid);
    if ((snapshot.allocatorBytes.allocated ?? 0) > 0) reads++;
  }
  t.ok(reads > 50, `${reads} snapshots with allocator figures, read while the host churned`);
  const own = await host.pauseAndReport();
  const paused = await readAgentSnapshot(host.pid);
  const raw = paused.raw.mallinfo2 as Record<string, number>;
  for (const field of ['arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'fsmblks', 'uordblks', 'fordblks', 'keepcost']) {
    t.equal(raw[field], own[field], `paused host: the agent's ${field} equals the host's own mallinfo2`);
  }
  t.ok(own.hblks >= 1, 'the host holds an mmapped block: hblks/hblkhd come from mp_');
  const exit = await host.finish();
  t.equal(exit.code, 0, 'the host ran to its end: glibc found its heap intact (it aborts on a corrupted one)');
  t.match(exit.lastLine, /^done single 1 /, 'still single-threaded at the end');
});

/** The Uid: and Gid: lines of every thread of `pid`. */
function threadCredentials(pid: number): string[] {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.map((tid) => {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    return `${/^Uid:\s+(.*)$/m.exec(status)?.[1]} / ${/^Gid:\s+(.*)$/m.exec(status)?.[1]} / ${/^Groups:[ \t]*(.*)$/m.exec(status)?.[1]}`;
  });
}

t.test('a kept single-threaded host that drops privileges: the agent thread follows before it serves', { skip: process.getuid?.() !== 0 && !process.env.CI ? 'needs root (setuid to nobody)' : false }, async (t) => {
  const host = await startSingleHost({}, ['drop']);
  t.equal(host.firstLine, 'single 1');
  // glibc changed the main thread only (it believes it is the only one): the agent's thread is
  // still root until its next connection.
  const before = threadCredentials(host.pid);
  t.equal(before.length, 2, 'main thread and the agent thread');
  t.equal(new Set(before).size, 2, `before: the agent's thread still had root's (${before.join(' | ')})`);
  const snapshot = await readAgentSnapshot(host.pid);
  t.equal(snapshot.level, 'agent', 'root may still read it');
  const after = threadCredentials(host.pid);
  t.same(new Set(after).size, 1, `every thread now has the same credentials: ${after.join(' | ')}`);
  t.match(after[0], /^65534\t65534\t65534\t65534 \/ 65534\t65534\t65534\t65534 \/ 65534 ?$/, 'nobody, nogroup, groups [nogroup]');
  const exit = await host.finish();
  t.equal(exit.code, 0);
});

t.test('glibc single-threaded host with ALLOCSCOPE_AGENT_SINGLE_THREADED=0: the agent thread is seen, as before', async (t) => {
  const host = await startSingleHost({ ALLOCSCOPE_AGENT_SINGLE_THREADED: '0' });
  t.equal(host.firstLine, 'single 0');
  t.equal((await agentRequest(host.pid, { op: 'info' })).hostSingleThreaded, false, 'info says so');
  await host.pauseAndReport();
  const exit = await host.finish();
  t.equal(exit.code, 0);
});

t.test('hostile clients: dropped mid-response, 1000 malformed requests; the host lives on', async (t) => {
  const w = await start(['steady', '100', '5', '0'], { allocator: 'glibc' });
  t.ok(await waitFor(() => agentSocketExists(w.pid), 2000));
  const path = agentSocketPath(w.pid);
  // Clients that ask for the largest answer and vanish at once: the agent's send fails with
  // EPIPE/ECONNRESET, never SIGPIPE (MSG_NOSIGNAL).
  for (let i = 0; i < 50; i++) {
    const socket = createConnection(path);
    socket.on('error', () => {});
    socket.on('connect', () => {
      socket.write('{"v":1,"op":"stats-text"}\n{"v":1,"op":"snapshot"}\n');
      socket.destroy();
    });
  }
  await sleep(300);
  t.ok(alive(w.pid), 'host alive after 50 dropped clients');
  let protocolErrors = 0;
  const garbage = ['not json', '{}', '{"v":2,"op":"snapshot"}', '{"v":1,"op":"explode"}', '{"v":1,"op":"trim","pad":-5}', '[1,2]', '{"v":1', '\u0001\u0002', '{"v":"1","op":"info"}', '{"op":"info"}'];
  for (let batch = 0; batch < 20; batch++) {
    const payload = Array.from({ length: 50 }, (_, i) => garbage[(batch + i) % garbage.length]).join('\n') + '\n';
    const lines = await rawExchange(path, payload, 50);
    protocolErrors += lines.filter((l) => JSON.parse(l).error?.code === 'EPROTO').length;
  }
  t.equal(protocolErrors, 1000, '1000 malformed requests, 1000 EPROTO answers');
  const tooLong = await rawExchange(path, `{"v":1,"op":"${'x'.repeat(5000)}"}\n`, 1);
  t.equal(JSON.parse(tooLong[0]).error.code, 'EPROTO', 'an over-long request is refused');
  const after = await readAgentSnapshot(w.pid);
  t.equal(after.pid, w.pid, 'still serving');
  t.ok(alive(w.pid));
});

t.test('another uid cannot reach the agent', async (t) => {
  const w = await start(['steady', '10', '5', '0'], { allocator: 'glibc' });
  t.ok(await waitFor(() => agentSocketExists(w.pid), 2000));
  const script = `require('net').createConnection(${JSON.stringify(agentSocketPath(w.pid))}).on('error', (e) => { console.log(e.code); process.exit(0); }).on('data', (d) => { console.log('DATA ' + d); process.exit(0); }).on('connect', function () { this.write('{"v":1,"op":"snapshot"}\\n'); });`;
  const asNobody = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10000 });
  t.equal(asNobody.stdout.trim(), 'EACCES', `nobody was refused: ${asNobody.stdout}${asNobody.stderr}`);
  t.ok(alive(w.pid));
});

t.test('a socket directory the agent cannot trust is refused (and the host is unaffected)', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'allocscope-test-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const planted = join(base, 'planted');
  mkdirSync(planted, { mode: 0o700 });
  chownSync(planted, 65534, 65534);
  const open = join(base, 'open');
  mkdirSync(open, { mode: 0o755 });
  const real = join(base, 'real');
  mkdirSync(real, { mode: 0o700 });
  const link = join(base, 'link');
  symlinkSync(real, link);
  for (const [label, dir] of [['owned by another user', planted], ['readable by others (0755)', open], ['a symlink', link]] as const) {
    const w = await start(['steady', '10', '5', '0'], { allocator: 'glibc', env: { ALLOCSCOPE_AGENT_DIR: dir } });
    await sleep(300);
    t.notOk(agentSocketExists(w.pid, { dir }), `${label}: no socket`);
    t.notOk(existsSync(join(real, `${w.pid}.sock`)), `${label}: nothing written through the link`);
    t.ok(alive(w.pid), `${label}: host alive`);
    await t.rejects(readAgentSnapshot(w.pid, { dir }), { code: 'EAGENT' });
  }
  const trusted = await start(['steady', '10', '5', '0'], { allocator: 'glibc', env: { ALLOCSCOPE_AGENT_DIR: real } });
  t.ok(await waitFor(() => agentSocketExists(trusted.pid, { dir: real }), 2000), 'a 0700 directory of ours is used');
  t.equal((await readAgentSnapshot(trusted.pid, { dir: real })).pid, trusted.pid);
});

t.test('after fork, parent and child each serve their own pid', async (t) => {
  const w = await start(['fork', '10', '5', '0'], { allocator: 'glibc' });
  t.ok(await waitFor(() => w.lines.some((l) => l.startsWith('child ')), 2000));
  const childPid = Number(w.lines.find((l) => l.startsWith('child '))?.split(' ')[1]);
  t.teardown(() => {
    try {
      process.kill(childPid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  });
  t.ok(await waitFor(() => agentSocketExists(childPid), 2000), 'the child has its own socket');
  t.equal((await readAgentSnapshot(w.pid)).pid, w.pid);
  const child = await readAgentSnapshot(childPid);
  t.equal(child.pid, childPid);
  // Both single-threaded glibc processes: the child keeps the parent's check (none made at fork).
  t.equal((await agentRequest(w.pid, { op: 'info' })).hostSingleThreaded, true, 'the parent is kept single-threaded');
  t.equal((await agentRequest(childPid, { op: 'info' })).hostSingleThreaded, true, 'and so is the child');
  t.ok((child.allocatorBytes.allocated ?? 0) > 0, "the child's figures come from its own census");
});

t.test('client errors: no socket, stale socket, bad pid', async (t) => {
  await t.rejects(readAgentSnapshot(999_999_999), { code: 'EAGENT' });
  await t.rejects(readAgentSnapshot(-1), { code: 'EINVAL' });
  const w = await start(['steady', '10', '5', '0'], { allocator: 'glibc' });
  t.ok(await waitFor(() => agentSocketExists(w.pid), 2000));
  w.stop(); // SIGKILL: the destructor cannot remove the socket
  await waitFor(() => !alive(w.pid), 2000);
  await t.rejects(readAgentSnapshot(w.pid), { code: 'EAGENT' }, 'a stale socket is reported, not trusted');
});

t.test('a real nginx (master and forked, privilege-dropping workers) under jemalloc and the agent', { skip: skipUnlessInstalled('jemalloc') || nginxSkip() }, async (t) => {
  const env: NodeJS.ProcessEnv = { ...process.env, LD_PRELOAD: `${ALLOCATOR_LIBRARIES.jemalloc?.path}:${agentLibraryPath()}` };
  const server = await startNginx(env);
  t.teardown(() => server.stop());
  const load = ab(server.port, 5000);
  t.equal(load.complete, 5000);
  t.equal(load.failed, 0, 'no failed requests');
  const pids = [server.master, ...server.workers()];
  t.equal(pids.length, 3, 'master and two workers');
  for (const pid of pids) {
    t.ok(await waitFor(() => agentSocketExists(pid), 2000), `socket for ${pid}`);
    const s = await readAgentSnapshot(pid);
    t.equal(s.pid, pid);
    t.equal(s.allocator.name, 'jemalloc', 'allocator figures from inside nginx');
    t.ok((s.allocatorBytes.allocated ?? 0) > 0 && (s.processBytes.rss ?? 0) > 0);
  }
});

// ---- property tests (fast-check): the client's decoding of response lines. A peer on the
// socket (here a plain Unix-socket server in this process, standing in for an agent that
// misbehaves) may send anything: agentRequest and readAgentSnapshot must resolve with a v1 ok
// answer or reject with an AllocscopeError, never throw anything else or hang. ----
t.test('property: any response line decodes to an ok answer or an AllocscopeError', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-wire-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let reply: { chunks: string[]; end: boolean } = { chunks: [], end: true };
  const server = createServer((socket) => {
    socket.once('data', () => {
      for (const chunk of reply.chunks) socket.write(chunk);
      if (reply.end) socket.end();
      else setTimeout(() => socket.destroy(), 50);
    });
    socket.on('error', () => {});
  });
  const pid = process.pid;
  await new Promise<void>((resolve) => server.listen(join(dir, `${pid}.sock`), resolve));
  t.teardown(() => server.close());

  const json = fc.jsonValue({ maxDepth: 3 });
  const shaped = fc.record(
    {
      v: fc.oneof(fc.constant(1), json),
      ok: fc.oneof(fc.boolean(), json),
      op: fc.oneof(fc.constant('snapshot'), json),
      error: fc.oneof(fc.record({ code: fc.oneof(fc.constantFrom('EACCES', 'EPROTO', 'ENOALLOCATOR', 'EAGENT', 'EINVAL', 'EWHAT'), json), message: json }, { requiredKeys: [] }), json),
      slots: fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom('allocator.allocated', 'statm.resident', 'status.VmRSS', 'glibc.arena'), fc.string({ maxLength: 10 })), fc.oneof(fc.double(), json)), json),
      allocator: fc.oneof(fc.record({ name: fc.oneof(fc.constantFrom('glibc', 'jemalloc', 'tcmalloc', 'mimalloc', 'unknown'), json), version: json, detectedBy: json }, { requiredKeys: [] }), json),
      time: fc.oneof(fc.double(), json),
      v8: json,
    },
    { requiredKeys: [] },
  );
  // Mostly well-shaped v1 answers (so that the ok path is reached often), then any JSON, then text.
  const okShaped = shaped.map((o) => JSON.stringify({ ...o, v: 1, ok: true }));
  const line = fc.oneof(
    { arbitrary: okShaped, weight: 3 },
    { arbitrary: shaped.map((o) => JSON.stringify(o)), weight: 2 },
    { arbitrary: json.map((v) => JSON.stringify(v)), weight: 1 },
    { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
  );
  // A line split anywhere into chunks, sometimes with no newline at all, sometimes cut short.
  const response = fc.tuple(line, fc.array(fc.nat(), { maxLength: 3 }), fc.constantFrom('\n', '\nextra', ''), fc.boolean()).map(([text, cuts, tail, end]) => {
    const full = text + tail;
    const at = [...new Set(cuts.map((c) => c % (full.length + 1)))].sort((a, b) => a - b);
    const chunks: string[] = [];
    let from = 0;
    for (const cut of [...at, full.length]) {
      if (cut > from) chunks.push(full.slice(from, cut));
      from = cut;
    }
    return { chunks, end };
  });
  let answered = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(response, fc.boolean(), async (r, snapshot) => {
      reply = r;
      try {
        const result = snapshot ? await readAgentSnapshot(pid, { dir, timeoutMs: 300 }) : await agentRequest(pid, { op: 'info' }, { dir, timeoutMs: 300 });
        answered++;
        if (!snapshot) return (result as Record<string, unknown>).v === 1 && (result as Record<string, unknown>).ok === true;
        return typeof (result as { pid: unknown }).pid === 'number';
      } catch (error) {
        refused++;
        return error instanceof AllocscopeError && ['EACCES', 'EPROTO', 'ENOALLOCATOR', 'EAGENT', 'EINVAL', 'ETIMEDOUT'].includes(error.code);
      }
    }),
    { numRuns: 300 },
  );
  t.ok(answered > 0 && refused > 0, `both outcomes reached (${answered} answered, ${refused} refused)`);
});

t.test('property: a generated ok snapshot answer decodes to a snapshot with its slots and allocator', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-wire-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let reply = '';
  const server = createServer((socket) => {
    socket.once('data', () => socket.end(reply));
    socket.on('error', () => {});
  });
  const pid = process.pid;
  await new Promise<void>((resolve) => server.listen(join(dir, `${pid}.sock`), resolve));
  t.teardown(() => server.close());
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: 2 ** 40 }),
      fc.nat({ max: 2 ** 40 }),
      fc.constantFrom('glibc', 'jemalloc', 'tcmalloc', 'mimalloc'),
      fc.integer({ min: 1, max: 2 ** 42 }),
      async (rssKb, rssPages, name, time) => {
        reply = `${JSON.stringify({ v: 1, ok: true, op: 'snapshot', pid, time, allocator: { name, version: '1.0', detectedBy: 'test' }, slots: { 'status.VmRSS': rssKb, 'statm.resident': rssPages } })}\n`;
        const snapshot = await readAgentSnapshot(pid, { dir, timeoutMs: 1000 });
        t.equal(snapshot.allocator.name, name);
        t.equal(snapshot.allocator.version, '1.0');
        t.same(snapshot.raw, { statm: { resident: rssPages }, status: { VmRSS: rssKb } });
        t.equal(snapshot.time, time);
      },
    ),
    { numRuns: 50 },
  );
});
