import t from 'tap';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { ALLOCATOR_LIBRARIES, allocatorInstalled } from '../../lib/allocators/libraries';
import { skipUnlessInstalled } from '../helpers/child';

const PRELOADABLE = ['jemalloc', 'tcmalloc', 'mimalloc'] as const;

function dpkgOwner(path: string): string | null {
  try {
    // "libjemalloc2:amd64: /usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    return execFileSync('dpkg', ['-S', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(':')[0];
  } catch {
    return null;
  }
}

t.test('the table: one preloadable library per replaceable allocator', async (t) => {
  t.same(Object.keys(ALLOCATOR_LIBRARIES).sort(), [...PRELOADABLE].sort(), 'glibc, musl and unknown have nothing to preload');
  for (const name of PRELOADABLE) {
    const library = ALLOCATOR_LIBRARIES[name];
    t.match(library?.path, /^\/usr\/lib\/x86_64-linux-gnu\/lib[a-z_]+\.so\.\d+$/, `${name}: an absolute soname path`);
    t.match(library?.debianPackage, /^lib[a-z0-9.-]+$/, `${name}: a Debian package name`);
  }
});

t.test('allocatorInstalled', async (t) => {
  t.equal(allocatorInstalled('glibc'), true, 'glibc is always there');
  t.equal(allocatorInstalled('musl'), false);
  t.equal(allocatorInstalled('unknown'), false);
  for (const name of PRELOADABLE) t.equal(allocatorInstalled(name), existsSync(ALLOCATOR_LIBRARIES[name]?.path as string), name);
});

for (const name of PRELOADABLE) {
  t.test(`${name}: the path is a shared object from the named Debian package`, { skip: skipUnlessInstalled(name) }, async (t) => {
    const library = ALLOCATOR_LIBRARIES[name] as { path: string; debianPackage: string };
    const fd = openSync(library.path, 'r');
    const header = Buffer.alloc(18);
    readSync(fd, header, 0, 18, 0);
    closeSync(fd);
    t.same([...header.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], 'ELF magic');
    t.equal(header.readUInt16LE(16), 3, 'ET_DYN: a shared object');
    const owner = dpkgOwner(library.path);
    if (owner === null) {
      t.comment('dpkg does not know this path (not a Debian system, or installed by hand)');
    } else {
      t.equal(owner, library.debianPackage, `dpkg -S ${library.path}`);
    }
  });
}
