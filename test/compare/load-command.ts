import t from 'tap';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { LoadOptions } from '../../lib/compare/load';
import { commandLoad, commandStep, parseAbOutput, parseWrkOutput, runTool } from '../../lib/compare/load-command';

const haveAb = existsSync('/usr/bin/ab');
const haveWrk = existsSync('/usr/bin/wrk');
const skipAb = haveAb || process.env.CI ? false : 'ab is not installed: apt-get install apache2-utils';
const skipWrk = haveWrk || process.env.CI ? false : 'wrk is not installed: apt-get install wrk';

let served = 0;
const server: Server = createServer((req, res) => {
  served++;
  res.statusCode = req.url === '/fail' ? 503 : 200;
  res.end('ok\n');
});
let base = '';
t.before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => ((base = `http://127.0.0.1:${(server.address() as { port: number }).port}`), resolve()))));
t.teardown(() => {
  server.closeAllConnections();
  server.close();
});

function options(path: string, overrides: Partial<LoadOptions> = {}): LoadOptions & { steps: number[] } {
  const steps: number[] = [];
  return { url: new URL(`${base}${path}`), requests: 600, step: 200, concurrency: 4, deadline: performance.now() + 30_000, signal: new AbortController().signal, onStep: (n) => void steps.push(n), steps, ...overrides };
}

t.test('parsing the tools\' reports', async (t) => {
  t.same(parseAbOutput('Complete requests:      1000\nFailed requests:        3\nNon-2xx responses:      2\n'), { completed: 995, failed: 5 });
  t.same(parseAbOutput('Complete requests:      10\nFailed requests:        0\n'), { completed: 10, failed: 0 });
  t.same(
    parseAbOutput('Document Length:        6 bytes\nComplete requests:      2000\nFailed requests:        775\n   (Connect: 0, Receive: 1, Length: 773, Exceptions: 1)\n'),
    { completed: 1998, failed: 2 },
    'answers of another length than the first are not failures (a dynamic page)',
  );
  t.equal(parseAbOutput('apr_socket_recv: Connection refused (111)'), null);
  const wrk = '  12345 requests in 1.00s, 1.2MB read\n  Socket errors: connect 1, read 2, write 3, timeout 4\n  Non-2xx or 3xx responses: 5\n';
  t.same(parseWrkOutput(wrk), { completed: 12340, failed: 15 });
  t.same(parseWrkOutput('  7 requests in 1.00s, 1KB read\n'), { completed: 7, failed: 0 });
  t.equal(parseWrkOutput('unable to connect'), null);
});

t.test('ab, step by step: the steps add up, onStep between them', { skip: skipAb }, async (t) => {
  const before = served;
  const o = options('/');
  const result = await commandLoad({ kind: 'ab' }, o);
  t.equal(result.endedBy, 'done');
  t.equal(result.completed, 600);
  t.same(o.steps, [200, 400, 600]);
  t.equal(served - before, 600, 'ab sent exactly the requests asked');
});

t.test('ab against failing answers: EPROTO', { skip: skipAb }, async (t) => {
  const result = await commandLoad({ kind: 'ab' }, options('/fail'));
  t.equal(result.endedBy, 'errors');
  t.equal(result.error?.code, 'EPROTO');
  t.equal(result.completed, 0);
});

t.test('wrk, time-sliced: whole seconds sized by the rate seen', { skip: skipWrk }, async (t) => {
  const o = options('/', { requests: 300, step: 100 });
  const result = await commandLoad({ kind: 'wrk' }, o);
  t.equal(result.endedBy, 'done');
  t.ok(result.completed >= 300, `wrk did ${result.completed} requests`);
  t.ok(o.steps.length >= 1);
});

t.test('a user command: argv with placeholders, or one string through /bin/sh', async (t) => {
  const before = served;
  const argv = [process.execPath, '-e', 'const [u, n] = process.argv.slice(1); (async () => { for (let i = 0; i < Number(n); i++) await (await fetch(u)).text(); })()', '{url}', '{requests}'];
  const o = options('/', { requests: 30, step: 10 });
  const result = await commandLoad({ kind: 'argv', argv }, o);
  t.equal(result.completed, 30);
  t.same(o.steps, [10, 20, 30]);
  t.equal(served - before, 30);
  const shell = await commandLoad({ kind: 'shell', command: 'test "$ALLOCSCOPE_REQUESTS" = 5 && test -n "$ALLOCSCOPE_URL" && test "$ALLOCSCOPE_CONCURRENCY" = 4' }, options('/', { requests: 10, step: 5 }));
  t.equal(shell.endedBy, 'done', 'the figures arrive in the environment');
  t.equal(shell.completed, 10);
  const failing = await commandLoad({ kind: 'shell', command: 'echo no >&2; exit 3' }, options('/'));
  t.equal(failing.endedBy, 'errors');
  t.equal(failing.error?.code, 'EPROTO');
  t.match(failing.error?.message, /exit 3/);
  const missing = await commandLoad({ kind: 'argv', argv: ['/nonexistent/load-tool'] }, options('/'));
  t.equal(missing.error?.code, 'EINVAL');
});

t.test('bounded: a step that runs too long is stopped; the deadline and the signal end the load', async (t) => {
  const slow = await commandStep({ kind: 'shell', command: 'sleep 30' }, options('/', { timeoutMs: 200 }), 10, 0);
  t.equal(slow.error?.code, 'ETIMEDOUT');
  const late = await commandLoad({ kind: 'shell', command: 'true' }, options('/', { deadline: performance.now() - 1 }));
  t.equal(late.endedBy, 'deadline');
  t.equal(late.completed, 0);
  const controller = new AbortController();
  const started = performance.now();
  setTimeout(() => controller.abort(), 200);
  const aborted = await commandLoad({ kind: 'shell', command: 'sleep 30' }, options('/', { signal: controller.signal }));
  t.equal(aborted.endedBy, 'aborted');
  t.ok(performance.now() - started < 5000, 'the running step was stopped, not waited for');
  const already = await commandLoad({ kind: 'shell', command: 'true' }, options('/', { signal: AbortSignal.abort() }));
  t.equal(already.endedBy, 'aborted');
  const direct = await runTool(['/bin/sh', '-c', 'echo out; echo err >&2'], process.env, 5000, new AbortController().signal);
  t.same([direct.status, direct.stdout, direct.stderr, direct.error], [0, 'out\n', 'err\n', null]);
});
