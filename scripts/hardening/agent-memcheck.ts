/**
 * The preload agent under a memory checker, with a real host: build/Release/heap_workload (a plain
 * C process) with liballocscope_agent.so preloaded, asked info, snapshot (summary and full), trim,
 * stats-text and a series of malformed requests through its socket, then left to exit by itself so
 * the checker's exit-time report (leaks included) counts.
 *
 *   ALLOCSCOPE_AGENT_CHECK=valgrind (default): valgrind memcheck over a normal build;
 *     --error-exitcode=99 --errors-for-leak-kinds=definite: any memory error or definite leak
 *     fails the exit status.
 *   ALLOCSCOPE_AGENT_CHECK=asan: an ASan+UBSan build (npx node-gyp rebuild --asan=1); the
 *     instrumented workload links libasan and the agent is preloaded after it (scripts/asan-test).
 *
 * Not under test/ on purpose: valgrind makes this take ~20 s, and `npm test` runs the agent
 * plainly (test/targets/agent.ts). CI runs this file from scripts/asan-test.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentLibraryPath } from '../../lib/targets/agent';

const mode = process.env.ALLOCSCOPE_AGENT_CHECK === 'asan' ? 'asan' : 'valgrind';
const WORKLOAD = join(__dirname, '..', '..', 'build', 'Release', 'heap_workload');
const haveValgrind = spawnSync('valgrind', ['--version']).status === 0;

/** Sends `lines` on one connection and collects one answer line per request (or the close). */
function converse(path: string, lines: string[], timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffered = '';
    const answers: string[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms after ${answers.length} answers`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(lines.join('\n') + '\n'));
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        answers.push(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
      if (answers.length >= lines.length) socket.end();
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answers);
    });
  });
}

async function waitForSocket(path: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      await converse(path, ['{"v":1,"op":"info"}'], 2000);
      return true;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return false;
}

// Twice: with the host kept single-threaded for glibc (the agent reads the lock-free census and
// refuses trim and stats-text) and with ALLOCSCOPE_AGENT_SINGLE_THREADED=0 (every request served).
for (const keep of [true, false]) {
t.test(`the agent under ${mode}${keep ? '' : ', ALLOCSCOPE_AGENT_SINGLE_THREADED=0'}: every request kind and malformed input, zero errors`, { skip: mode === 'valgrind' && !haveValgrind ? 'valgrind is not installed (apt-get install valgrind)' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-memcheck-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // steady 200 blocks of 1000 B every 20 ms, 400 steps: 8 s natively, longer under valgrind; the
  // host must exit on its own for the exit-time checks (a SIGKILL would skip them).
  const workload = [WORKLOAD, 'steady', '200', '20', '400'];
  const env: NodeJS.ProcessEnv = { ...process.env, ALLOCSCOPE_AGENT_DIR: join(dir, 'agent') };
  delete env.NODE_V8_COVERAGE;
  if (!keep) env.ALLOCSCOPE_AGENT_SINGLE_THREADED = '0';
  let command: string;
  let args: string[];
  if (mode === 'valgrind') {
    // Not LD_PRELOAD for valgrind itself: its launcher is a dynamically linked program that then
    // execs the tool, so the agent would load into the launcher first, answer on this pid's socket
    // for a moment, and vanish at the exec (a CI run connected to it, then got ECONNREFUSED).
    // env(1), traced by valgrind, preloads the agent into the workload alone.
    delete env.LD_PRELOAD;
    command = 'valgrind';
    args = [
      '--error-exitcode=99',
      '--leak-check=full',
      '--errors-for-leak-kinds=definite',
      '--track-origins=yes',
      '--trace-children=yes',
      `--suppressions=${join(__dirname, 'workload.supp')}`,
      'env',
      `LD_PRELOAD=${agentLibraryPath()}`,
      ...(keep ? [] : ['ALLOCSCOPE_AGENT_SINGLE_THREADED=0']),
      ...workload,
    ];
  } else {
    // libasan must come first among the preloads (scripts/asan-test puts it in LD_PRELOAD).
    env.LD_PRELOAD = [process.env.LD_PRELOAD, agentLibraryPath()].filter((p) => p).join(':');
    // Node's own leaks are why scripts/asan-test turns leak detection off; the C host has none.
    env.ASAN_OPTIONS = `${process.env.ASAN_OPTIONS ?? ''}:detect_leaks=1:exitcode=98`;
    env.LSAN_OPTIONS = `suppressions=${join(__dirname, 'workload.lsan.supp')}`;
    command = workload[0];
    args = workload.slice(1);
  }
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const socket = join(dir, 'agent', `${child.pid}.sock`);
  t.ok(await waitForSocket(socket, 20000), 'the agent answers under the checker');

  const valid = [
    '{"v":1,"op":"info"}',
    '{"v":1,"op":"snapshot"}',
    '{"v":1,"op":"snapshot","detail":"full"}',
    '{"v":1,"op":"trim","pad":0}',
    '{"v":1,"op":"trim","pad":1048576}',
    '{"v":1,"op":"stats-text"}',
  ];
  const answers = await converse(socket, valid, 30000);
  t.equal(answers.length, valid.length, 'one answer per request');
  for (const [i, answer] of answers.entries()) {
    const parsed = JSON.parse(answer) as { ok: boolean; error?: { code?: string } };
    // Under ASan, malloc is ASan's own: no allocator allocscope knows, so no release call.
    const refusedTrim = mode === 'asan' && valid[i].includes('"trim"') && parsed.error?.code === 'ENOALLOCATOR';
    // Kept single-threaded (glibc under valgrind): trim and stats-text would take the arena locks.
    const keptRefusal = keep && mode === 'valgrind' && /"trim"|"stats-text"/.test(valid[i]) && parsed.error?.code === 'EUNSUPPORTED';
    t.ok(parsed.ok === true || refusedTrim || keptRefusal, `${valid[i]}: ${parsed.ok ? 'ok' : parsed.error?.code}`);
  }

  const malformed = [
    'garbage',
    '{}',
    '{"v":2,"op":"info"}',
    '{"v":1,"op":"nope"}',
    '{"v":1,"op":"trim","pad":-1}',
    '{"v":1,"op":"trim","pad":"x"}',
    '{"v":99999999999999999999999,"op":"info"}',
    '{"v":1,"op":"info"',
    '{"v":1,"op":"\u00e9\u0001"}',
    '   ',
  ];
  const refusals = await converse(socket, malformed, 30000);
  t.equal(refusals.length, malformed.length, 'one answer per malformed request');
  for (const [i, answer] of refusals.entries()) {
    const parsed = JSON.parse(answer) as { ok: boolean; error?: { code?: string } };
    t.equal(parsed.error?.code, 'EPROTO', `${JSON.stringify(malformed[i])}: EPROTO`);
  }
  // A request with a NUL byte, and one longer than the 4096-byte limit (the connection ends).
  const nul = await converse(socket, ['{"v":1,\u0000"op":"info"}'], 30000);
  t.match(nul[0], /EPROTO/, 'a NUL byte: EPROTO');
  const long = await converse(socket, [`{"v":1,"op":"info","x":"${'a'.repeat(5000)}"}`], 30000);
  t.match(long[0] ?? '', /longer than 4096/, 'an over-long request is refused');
  // A client that goes away mid-response (stats-text is the largest answer).
  const dropped = createConnection(socket);
  dropped.on('connect', () => {
    dropped.write('{"v":1,"op":"stats-text"}\n');
    dropped.destroy();
  });
  dropped.on('error', () => {});
  const after = await converse(socket, ['{"v":1,"op":"info"}'], 30000);
  t.match(after[0], /"ok":true/, 'still serving after a dropped client');

  const code = await exited;
  const reports = stderr.split('\n').filter((l) => /ERROR SUMMARY|definitely lost|AddressSanitizer|runtime error|LeakSanitizer/.test(l));
  t.comment(reports.join('\n'));
  if (code !== 0) t.comment(stderr.slice(-8000));
  t.equal(code, 0, `the host exits cleanly under ${mode} (99/98: the checker found errors)`);
  if (mode === 'valgrind') t.match(stderr, /ERROR SUMMARY: 0 errors/, 'valgrind: 0 errors');
  t.notMatch(stderr, /AddressSanitizer|runtime error:|LeakSanitizer/, 'no sanitizer report');
});
}
