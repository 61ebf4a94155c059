import t from 'tap';
import { ALLOCATOR_LIBRARIES } from '../../lib/allocators/libraries';
import { DEFAULT_VARIANTS, missingLibrary, parseVariant, parseVariants } from '../../lib/compare/variants';

t.test('a variant is an allocator and its extra environment', async (t) => {
  t.same(parseVariant('glibc'), { label: 'glibc', allocator: 'glibc', env: {} });
  t.same(parseVariant(' glibc:MALLOC_ARENA_MAX=2 '), { label: 'glibc:MALLOC_ARENA_MAX=2', allocator: 'glibc', env: { MALLOC_ARENA_MAX: '2' } });
  t.same(parseVariant('jemalloc:MALLOC_CONF=dirty_decay_ms=1000,x:A='), {
    label: 'jemalloc:MALLOC_CONF=dirty_decay_ms=1000,x:A=',
    allocator: 'jemalloc',
    env: { MALLOC_CONF: 'dirty_decay_ms=1000,x', A: '' },
  });
  t.same(
    parseVariants(DEFAULT_VARIANTS).map((v) => v.label),
    ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc', 'glibc:MALLOC_ARENA_MAX=2'],
  );
});

t.test('bad variants are EINVAL with a sentence', async (t) => {
  for (const bad of ['', ' , ', 'ptmalloc', 'glibc:NOEQUALS', 'glibc:1X=2', 'glibc:LD_PRELOAD=/x.so', 'glibc,glibc']) {
    t.throws(() => parseVariants(bad), { code: 'EINVAL' }, JSON.stringify(bad));
  }
});

t.test('a missing library names the Debian package; glibc is never missing', async (t) => {
  t.equal(missingLibrary(parseVariant('glibc:MALLOC_ARENA_MAX=2')), null);
  for (const name of ['jemalloc', 'tcmalloc', 'mimalloc'] as const) {
    const missing = missingLibrary(parseVariant(name));
    const library = ALLOCATOR_LIBRARIES[name];
    if (missing === null) t.pass(`${name} is installed here`);
    else t.match(missing, `apt-get install ${library?.debianPackage}`);
  }
});
