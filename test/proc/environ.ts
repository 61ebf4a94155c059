import t from 'tap';
import fc from 'fast-check';
import { isAllocatorVariable, parseAllocatorEnvironment, preloadedLibraries, readAllocatorEnvironment } from '../../lib/proc/environ';
import { runScenario, scenarioName } from '../helpers/child';
import { codeOf, reapedPid, startOtherUsersProcess, startTarget, withoutCapabilities } from '../helpers/proc-child';

const SECRET = 'hunter2-do-not-leak';

if (scenarioName() !== undefined) {
  void runScenario({
    withoutPtrace: () => ({ code: codeOf(() => readAllocatorEnvironment(Number(process.env.TARGET_PID))) }),
  });
} else {
  t.test('isAllocatorVariable: the allocator names and prefixes, nothing else', async (t) => {
    for (const name of ['LD_PRELOAD', 'GLIBC_TUNABLES', 'MALLOC_CONF', 'JE_MALLOC_CONF', '_RJEM_MALLOC_CONF', 'MALLOC_ARENA_MAX', 'MALLOC_TRIM_THRESHOLD_', 'TCMALLOC_RELEASE_RATE', 'MIMALLOC_SHOW_STATS']) {
      t.ok(isAllocatorVariable(name), name);
    }
    for (const name of ['MALLOC_', 'TCMALLOC_', 'PATH', 'LD_LIBRARY_PATH', 'AWS_SECRET_ACCESS_KEY', 'MY_MALLOC_CONF', 'malloc_conf', 'LD_PRELOAD_X']) {
      t.notOk(isAllocatorVariable(name), name);
    }
  });

  t.test('parseAllocatorEnvironment: keeps allocator variables only, first value wins', async (t) => {
    const block = [
      'PATH=/usr/bin',
      `DATABASE_URL=postgres://app:${SECRET}@db/app`,
      'LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
      'MALLOC_CONF=background_thread:true,dirty_decay_ms:1000',
      `TOKEN=${SECRET}`,
      'MALLOC_ARENA_MAX=2',
      'GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072',
      'MALLOC_ARENA_MAX=8',
      'EMPTY_VALUE=',
      'MIMALLOC_PURGE_DELAY=0',
      'novalue',
      '=noname',
      '',
    ].join('\0');
    const environment = parseAllocatorEnvironment(block);
    t.same(environment, {
      LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
      MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000',
      MALLOC_ARENA_MAX: '2',
      GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072',
      MIMALLOC_PURGE_DELAY: '0',
    });
    t.notMatch(JSON.stringify(environment), SECRET);
    t.same(parseAllocatorEnvironment(''), {});
  });

  t.test('preloadedLibraries: LD_PRELOAD split on spaces and colons', async (t) => {
    t.same(preloadedLibraries({ LD_PRELOAD: '/a/libjemalloc.so.2:/b/libx.so  libfoo.so' }), ['/a/libjemalloc.so.2', '/b/libx.so', 'libfoo.so']);
    t.same(preloadedLibraries({}), []);
    t.same(preloadedLibraries({ LD_PRELOAD: ' ' }), []);
  });

  t.test('readAllocatorEnvironment of a real child: what it was started with, minus secrets', async (t) => {
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      MALLOC_ARENA_MAX: '3',
      TCMALLOC_RELEASE_RATE: '5',
      API_KEY: SECRET,
      HOME: `/home/${SECRET}`,
    };
    const target = await startTarget('sleep', ['60'], { env });
    t.teardown(() => target.stop());
    const environment = readAllocatorEnvironment(target.pid);
    t.same(environment, { MALLOC_ARENA_MAX: '3', TCMALLOC_RELEASE_RATE: '5' });
    t.notMatch(JSON.stringify(environment), SECRET);
  });

  t.test('errors: a reaped pid is ESRCH; without CAP_SYS_PTRACE, the process of another uid is EACCES', async (t) => {
    const gone = await reapedPid();
    t.throws(() => readAllocatorEnvironment(gone), { code: 'ESRCH' });
    t.throws(() => readAllocatorEnvironment(0), { code: 'EINVAL' });
    const target = await startOtherUsersProcess();
    t.teardown(() => target.stop());
    t.same(await withoutCapabilities(__filename, 'withoutPtrace', { TARGET_PID: String(target.pid) }), { code: 'EACCES' });
  });

  // ---- property tests (fast-check) ----
  t.test('property: any environment block yields only allocator variables, each at its first value', (t) => {
    const name = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('LD_PRELOAD', 'MALLOC_ARENA_MAX', 'MALLOC_CONF', 'TCMALLOC_RELEASE_RATE', 'MIMALLOC_', 'MALLOC_', 'SECRET_TOKEN', '__proto__', 'constructor'));
    const entry = fc.oneof(fc.tuple(name, fc.string({ maxLength: 20 })).map(([n, v]) => `${n}=${v}`), fc.string({ maxLength: 20 }));
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 30 }), (entries) => {
        const block = entries.join('\0');
        const found = parseAllocatorEnvironment(block);
        // What a first-match getenv() would return for each allocator variable of the block.
        const expected = new Map<string, string>();
        for (const e of block.split('\0')) {
          const at = e.indexOf('=');
          if (at > 0 && isAllocatorVariable(e.slice(0, at)) && !expected.has(e.slice(0, at))) expected.set(e.slice(0, at), e.slice(at + 1));
        }
        t.same(Object.entries(found), [...expected.entries()]);
        preloadedLibraries(found).forEach((library) => t.notMatch(library, /[\s:]/));
        return Object.keys(found).every(isAllocatorVariable);
      }),
      { numRuns: 300 },
    );
    t.end();
  });
}
