import t from 'tap';
import { allocatorEntry, KNOWN_ALLOCATORS } from '../../lib/allocators';
import { slotNames } from '../../lib/allocators/live';
import type { AllocatorName } from '../../lib/snapshot';

const WITH_ENTRY: readonly AllocatorName[] = ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc'];

t.test('every supported allocator has an entry named after it; musl and unknown have none', async (t) => {
  for (const name of WITH_ENTRY) {
    const entry = allocatorEntry(name);
    t.equal(entry?.mapping.name, name, name);
    t.type(entry?.release, 'function');
  }
  t.equal(allocatorEntry('musl'), undefined);
  t.equal(allocatorEntry('unknown'), undefined);
  for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
    t.equal(allocatorEntry(name as AllocatorName), undefined, `"${name}" (say, from an agent's JSON) is no allocator`);
  }
});

t.test('KNOWN_ALLOCATORS: every name a Snapshot may carry, once', async (t) => {
  t.same([...KNOWN_ALLOCATORS].sort(), ['glibc', 'jemalloc', 'mimalloc', 'musl', 'tcmalloc', 'unknown']);
  t.equal(new Set(KNOWN_ALLOCATORS).size, KNOWN_ALLOCATORS.length);
  for (const name of WITH_ENTRY) t.ok(KNOWN_ALLOCATORS.includes(name), name);
});

t.test('each mapping reads only slots the addon has, under its own prefix', async (t) => {
  const names = new Set(slotNames());
  const prefixes = new Set<string>();
  const rawKeys = new Set<string>();
  for (const name of WITH_ENTRY) {
    const { mapping } = allocatorEntry(name) as NonNullable<ReturnType<typeof allocatorEntry>>;
    const asked: string[] = [];
    const bytes = mapping.bytesFrom((slot) => {
      asked.push(slot);
      return 4096;
    });
    t.ok(bytes !== null, `${name}: totals from a full sample`);
    t.ok(asked.length > 0, `${name}: reads slots`);
    for (const slot of asked) {
      if (!names.has(slot)) t.fail(`${name} reads "${slot}", which the addon does not have`);
      if (!slot.startsWith(mapping.slotPrefix)) t.fail(`${name} reads "${slot}" outside its prefix ${mapping.slotPrefix}`);
    }
    t.ok(
      [...names].some((slot) => slot.startsWith(mapping.slotPrefix)),
      `${name}: the addon has slots under ${mapping.slotPrefix} (they become raw.${mapping.rawKey})`,
    );
    t.equal(mapping.bytesFrom(() => null), null, `${name}: an empty sample has no totals`);
    prefixes.add(mapping.slotPrefix);
    rawKeys.add(mapping.rawKey);
  }
  t.equal(prefixes.size, WITH_ENTRY.length, 'slot prefixes are distinct');
  t.equal(rawKeys.size, WITH_ENTRY.length, 'raw keys are distinct');
});

t.test('release: the live allocator\'s own call; another allocator\'s is ENOALLOCATOR', async (t) => {
  const glibc = allocatorEntry('glibc')?.release();
  t.same([glibc?.allocator, glibc?.action], ['glibc', 'malloc_trim(0)']);
  for (const name of ['jemalloc', 'tcmalloc', 'mimalloc'] as const) {
    t.throws(() => allocatorEntry(name)?.release(), { code: 'ENOALLOCATOR' }, name);
  }
});
