/**
 * A process tree read as one: Apache prefork/worker, nginx, a Node cluster. Descendants come
 * from /proc/PID/task/TID/children (Linux >= 3.5); each is read at the basic level (status and
 * statm, a few µs) and its PSS through the smaps gate (at most once per 10 s per process), so
 * shared pages are not counted once per child. The result is the root's Snapshot with the tree's
 * sums in processBytes and each child under raw.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Snapshot } from '../snapshot';
import { readProcTarget } from './target';

/** Every descendant of `pid`, breadth first; processes that vanish meanwhile are skipped. */
export function descendants(pid: number, limit = 10_000): number[] {
  const found: number[] = [];
  const queue = [pid];
  const seen = new Set(queue);
  while (queue.length > 0 && found.length < limit) {
    const parent = queue.shift() as number;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      let children: string;
      try {
        children = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const text of children.split(' ')) {
        const child = Number(text);
        if (!Number.isSafeInteger(child) || child <= 0 || seen.has(child)) continue;
        seen.add(child);
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

const sum = (values: Array<number | null>): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === values.length ? known.reduce((a, b) => a + b, 0) : null;
};

/** The tree rooted at `pid` as one Snapshot (source procfs). */
export function readProcTree(pid: number): Snapshot {
  const root = readProcTarget(pid);
  const members: Snapshot[] = [root];
  for (const child of descendants(pid)) {
    try {
      members.push(readProcTarget(child));
    } catch {
      /* exited between listing and reading */
    }
  }
  const pss: Record<string, number> = {};
  const rss: Record<string, number> = {};
  for (const m of members) {
    if (m.processBytes.pss !== null) pss[String(m.pid)] = m.processBytes.pss;
    if (m.processBytes.rss !== null) rss[String(m.pid)] = m.processBytes.rss;
  }
  const pick = (key: keyof Snapshot['processBytes']) => sum(members.map((m) => m.processBytes[key]));
  return {
    ...root,
    levelNote: `a tree of ${members.length} processes read through /proc (sums below; per-process figures under raw.tree_rss and raw.tree_pss)${root.levelNote ? `; ${root.levelNote}` : ''}`,
    processBytes: {
      rss: pick('rss'),
      rssAnon: pick('rssAnon'),
      rssFile: pick('rssFile'),
      rssShmem: pick('rssShmem'),
      swap: pick('swap'),
      peakRss: null, // a sum of peaks taken at different times is no peak
      pss: pick('pss'),
      lazyFree: pick('lazyFree'),
    },
    raw: { ...root.raw, tree: { processes: members.length }, tree_rss: rss, tree_pss: pss },
  };
}
