/** A small tmpfs of our own (root only), for disk-full faults: a real ENOSPC, not a fake one. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  /** Unmounts and removes the mount point (idempotent). */
  remove(): void;
}

/**
 * Mounts a tmpfs of `bytes` at a fresh directory; returns the reason instead when mount is not
 * permitted, for a skip. Under CI (root) a refused mount throws: the disk-full tests must run there.
 */
export function mountTmpfs(bytes: number): Tmpfs | string {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-tmpfs-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 });
  if (mount.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    const reason = `cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): ${(mount.stderr || String(mount.error)).trim()}`;
    if (process.env.CI) throw new Error(`${reason}; CI runs as root and must run the disk-full tests`);
    return reason;
  }
  let mounted = true;
  return {
    dir,
    remove() {
      if (mounted) spawnSync('umount', [dir], { timeout: 10_000 });
      mounted = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
