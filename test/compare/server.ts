import t from 'tap';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { demoServerPath } from '../../lib/cli/demo';
import { exitSentence, freePort, hostPort, portOpen, startServer } from '../../lib/compare/server';
import { parseVariant } from '../../lib/compare/variants';
import { processAlive } from '../../lib/targets/pick';
import { agentSocketExists } from '../../lib/targets/agent';

const CRASH_SERVER = join(__dirname, '..', 'helpers', 'crash-server.js');
const never = new AbortController().signal;

t.test('small parts', async (t) => {
  t.same(hostPort(new URL('http://127.0.0.1:8080/x')), { host: '127.0.0.1', port: 8080 });
  t.same(hostPort(new URL('http://localhost/')), { host: 'localhost', port: 80 });
  t.same(hostPort(new URL('http://[::1]:81/')), { host: '::1', port: 81 });
  t.equal(exitSentence({ code: 3, signal: null }, '', 'at start'), 'the server ended (exit status 3) at start.');
  t.equal(exitSentence({ code: null, signal: 'SIGSEGV' }, 'a\nb\nc\nd\n', 'during the load'), 'the server ended (signal SIGSEGV) during the load; it said: b | c | d.');
  const port = await freePort();
  t.ok(port > 0 && port < 65536);
  t.equal(await portOpen('127.0.0.1', port), false, 'a free port accepts nothing');
});

t.test('starts the demo server under an allocator with the agent, waits for its port, stops it by pid', async (t) => {
  const port = await freePort();
  const url = new URL(`http://127.0.0.1:${port}/`);
  const server = await startServer(parseVariant('jemalloc'), [demoServerPath(), '--port', String(port), '--threads', '2'], url, 10_000, never);
  t.ok(await portOpen('127.0.0.1', port), 'listening when startServer resolves');
  t.ok(agentSocketExists(server.pid), 'the agent socket is there');
  const maps = require('node:fs').readFileSync(`/proc/${server.pid}/maps`, 'utf8') as string;
  t.match(maps, /libjemalloc/, 'the variant\'s allocator is preloaded');
  t.equal(server.exit(), null);
  const exit = await server.stop();
  t.same(exit, { code: 0, signal: null }, 'the demo server ends with 0 on SIGTERM');
  t.notOk(processAlive(server.pid));
  t.same(await server.stop(), exit, 'stopping again returns how it ended');
});

t.test('a server deaf to SIGTERM is killed after the grace time', async (t) => {
  const port2 = await freePort();
  const deaf = await startServer(
    parseVariant('glibc'),
    [process.execPath, '-e', `process.on('SIGTERM', () => {}); require('node:net').createServer().listen(${port2}, '127.0.0.1')`],
    new URL(`http://127.0.0.1:${port2}/`),
    10_000,
    never,
  );
  const started = performance.now();
  const exit = await deaf.stop(300);
  t.equal(exit.signal, 'SIGKILL');
  t.ok(performance.now() - started < 5000);
});

t.test('failures to start: each with its code, and nothing left running', async (t) => {
  const port = await freePort();
  const url = new URL(`http://127.0.0.1:${port}/`);
  await t.rejects(startServer(parseVariant('glibc'), ['/nonexistent/server'], url, 2000, never), { code: 'EINVAL' }, 'no such command');
  await t.rejects(startServer(parseVariant('glibc:EXIT_AT_START=3'), [process.execPath, CRASH_SERVER, String(port)], url, 5000, never), { code: 'ESRCH', message: /exit status 3.*told to exit at start/ }, 'exits before listening');
  await t.rejects(startServer(parseVariant('glibc:NEVER_LISTEN=1'), [process.execPath, CRASH_SERVER, String(port)], url, 600, never), { code: 'ETIMEDOUT' }, 'never listens');
  await t.rejects(startServer(parseVariant('glibc:NEVER_LISTEN=1'), [process.execPath, CRASH_SERVER, String(port)], url, 10_000, AbortSignal.timeout(300)), { code: 'ECANCELED' }, 'interrupted while waiting');
  const squatter = createServer().listen(port, '127.0.0.1');
  await new Promise((resolve) => squatter.once('listening', resolve));
  t.teardown(() => squatter.close());
  await t.rejects(startServer(parseVariant('glibc'), [process.execPath, CRASH_SERVER, String(port)], url, 2000, never), { code: 'EINVAL', message: /already accepts connections/ }, 'the port is taken');
});
