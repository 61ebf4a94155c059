import t from 'tap';
import { createServer, type Server } from 'node:http';
import { builtinLoad, type LoadOptions, loadName, MAX_FAILED_REQUESTS, parseLoad, tooManyFailures } from '../../lib/compare/load';

/** A real HTTP server on 127.0.0.1: answers 200, or 500 for /fail, or never for /hang. */
function listen(): Promise<{ server: Server; url: (path: string) => URL; served: () => number }> {
  let served = 0;
  const server = createServer((req, res) => {
    if (req.url === '/hang') return;
    if (req.url === '/cut') {
      // Headers and half a body, then the connection drops: a server crashing mid-answer.
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 10);
      return;
    }
    served++;
    res.statusCode = req.url === '/fail' ? 500 : 200;
    res.end('ok\n');
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ server, url: (path) => new URL(`http://127.0.0.1:${port}${path}`), served: () => served });
    }),
  );
}

function options(url: URL, overrides: Partial<LoadOptions> = {}): LoadOptions & { steps: number[] } {
  const steps: number[] = [];
  return { url, requests: 1000, step: 100, concurrency: 4, deadline: performance.now() + 20_000, signal: new AbortController().signal, onStep: (n) => void steps.push(n), steps, ...overrides };
}

t.test('--load parsing', async (t) => {
  t.same(parseLoad('builtin'), { kind: 'builtin' });
  t.same(parseLoad(' ab '), { kind: 'ab' });
  t.same(parseLoad('wrk'), { kind: 'wrk' });
  t.same(parseLoad('["hey","-n","{requests}","{url}"]'), { kind: 'argv', argv: ['hey', '-n', '{requests}', '{url}'] });
  t.same(parseLoad('curl -s "$ALLOCSCOPE_URL"'), { kind: 'shell', command: 'curl -s "$ALLOCSCOPE_URL"' });
  for (const bad of ['', '  ', '[', '[]', '[1]', '["a",""]', '{"a":1}x']) {
    if (bad.trim().startsWith('[') || bad.trim() === '') t.throws(() => parseLoad(bad), { code: 'EINVAL' }, JSON.stringify(bad));
  }
  t.equal(loadName({ kind: 'builtin' }), 'builtin');
  t.equal(loadName({ kind: 'argv', argv: ['x', '{url}'] }), '["x","{url}"]');
  t.equal(loadName({ kind: 'shell', command: 'x y' }), 'x y');
  t.notOk(tooManyFailures(0, MAX_FAILED_REQUESTS - 1));
  t.ok(tooManyFailures(0, MAX_FAILED_REQUESTS));
  t.notOk(tooManyFailures(10_000, MAX_FAILED_REQUESTS), 'a few failures among many successes are tolerated');
});

t.test('the built-in generator completes exactly the requests asked, calling onStep at each boundary', async (t) => {
  const { server, url, served } = await listen();
  t.teardown(() => server.close());
  const o = options(url('/'));
  const result = await builtinLoad(o);
  t.equal(result.endedBy, 'done');
  t.equal(result.completed, 1000);
  t.equal(result.failed, 0);
  t.equal(served(), 1000, 'the server saw each request once');
  t.equal(o.steps.length, 10);
  t.same(o.steps, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  t.ok(result.elapsedMs > 0);
  t.equal(result.error, null);
});

t.test('bounded in time and stopped by its signal', async (t) => {
  const { server, url } = await listen();
  t.teardown(() => server.close());
  const timed = await builtinLoad(options(url('/'), { requests: 10_000_000, deadline: performance.now() + 300 }));
  t.equal(timed.endedBy, 'deadline');
  t.ok(timed.completed > 0 && timed.completed < 10_000_000, `${timed.completed} requests in 300 ms`);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 300);
  const stopped = await builtinLoad(options(url('/'), { requests: 10_000_000, signal: controller.signal }));
  t.equal(stopped.endedBy, 'aborted');
  t.ok(stopped.completed < 10_000_000);
});

t.test('failing answers and refused connections end the load with EPROTO', async (t) => {
  const { server, url } = await listen();
  const failing = await builtinLoad(options(url('/fail')));
  t.equal(failing.endedBy, 'errors');
  t.equal(failing.error?.code, 'EPROTO');
  t.match(failing.error?.message, /HTTP 500/);
  t.ok(failing.failed >= MAX_FAILED_REQUESTS && failing.failed < 1000, `${failing.failed} failed before it gave up`);
  const closedUrl = url('/');
  await new Promise((resolve) => server.close(resolve));
  const refused = await builtinLoad(options(closedUrl));
  t.equal(refused.endedBy, 'errors');
  t.match(refused.error?.message, /ECONNREFUSED/);
});

t.test('a request with no answer times out instead of hanging', async (t) => {
  const { server, url } = await listen();
  t.teardown(() => server.closeAllConnections());
  t.teardown(() => server.close());
  const result = await builtinLoad(options(url('/hang'), { requests: 2, concurrency: 2, timeoutMs: 200 }));
  t.equal(result.completed, 0);
  t.equal(result.failed, 2);
  t.equal(result.endedBy, 'done', 'two failures are under the give-up floor');
});

t.test('an answer cut in the middle counts as failed, and does not hang the load', async (t) => {
  const { server, url } = await listen();
  t.teardown(() => server.close());
  const result = await builtinLoad(options(url('/cut'), { requests: 3, concurrency: 1 }));
  t.same([result.completed, result.failed, result.endedBy], [0, 3, 'done']);
});
