import t from 'tap';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPid, MAX_SAFE_KB, ProcFile, procHex, procInteger, procRootOf, readProcFile } from '../../lib/proc/files';
import { runScenario, scenarioName } from '../helpers/child';
import { codeOf, reapedPid, startOtherUsersProcess, startTarget, withoutCapabilities } from '../helpers/proc-child';

if (scenarioName() !== undefined) {
  void runScenario({
    // Without capabilities: another uid's maps and status, and a mode-000 file in a fake procfs tree.
    unreadable: () => ({
      maps: codeOf(() => readProcFile(Number(process.env.TARGET_PID), 'maps')),
      status: codeOf(() => readProcFile(Number(process.env.TARGET_PID), 'status')),
      fakeStatus: codeOf(() => readProcFile(1234, 'status', { procRoot: process.env.FAKE_ROOT })),
    }),
  });
} else {
  t.test('checkPid accepts process ids and rejects everything else with EINVAL', async (t) => {
    t.equal(checkPid(1), 1);
    t.equal(checkPid(process.pid), process.pid);
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity, 4 * 1024 * 1024, '12', null, undefined, {}, 12n]) {
      t.throws(() => checkPid(bad), { code: 'EINVAL' }, String(bad));
    }
  });

  t.test('procInteger and procHex: /proc numbers a double holds exactly, else null', async (t) => {
    t.equal(procInteger('0'), 0);
    t.equal(procInteger('9007199254740991'), Number.MAX_SAFE_INTEGER);
    t.equal(procInteger('9007199254740992'), null, '2^53: the first integer a double shares with its neighbour');
    t.equal(procInteger('18446744073709551615'), null, 'a u64 at its largest');
    t.equal(procInteger('9'.repeat(400)), null, 'Number() of it is Infinity');
    t.equal(procInteger(String(MAX_SAFE_KB), MAX_SAFE_KB), MAX_SAFE_KB);
    t.ok(Number.isSafeInteger(MAX_SAFE_KB * 1024) && !Number.isSafeInteger((MAX_SAFE_KB + 1) * 1024), 'MAX_SAFE_KB is the last kB figure whose bytes are safe');
    t.equal(procInteger(String(MAX_SAFE_KB + 1), MAX_SAFE_KB), null);
    for (const odd of ['', '-1', '1.5', '1e3', '0x10', ' 12', '12\n']) t.equal(procInteger(odd), null, JSON.stringify(odd));
    t.equal(procHex('7f7f99000000'), 0x7f7f99000000);
    t.equal(procHex('ffffffffff600000'), 0xffffffffff600000, '[vsyscall]: past 2^53, page-aligned, exact');
    t.equal(procHex('fffffffffffff001'), null, 'past 2^53 and not a multiple of the step a double takes there');
    t.equal(procHex('10000000000000001'), null, '2^64 + 1: 17 digits, no kernel prints it, and a double rounds it');
    t.equal(procHex('f'.repeat(300)), null, 'Infinity');
    t.equal(procHex(''), null, 'no digits');
    t.equal(procHex('ffffffffff60000g'), null, 'a long one with a stray character: null, not a BigInt SyntaxError');
  });

  t.test('procRoot must be an absolute path', async (t) => {
    t.equal(procRootOf(undefined), '/proc');
    t.equal(procRootOf({ procRoot: '/host/proc' }), '/host/proc');
    t.throws(() => procRootOf({ procRoot: 'proc' }), { code: 'EINVAL' });
    t.throws(() => procRootOf({ procRoot: 5 as unknown as string }), { code: 'EINVAL' });
  });

  t.test('reads a whole file, however large, and maps errno to codes', async (t) => {
    const target = await startTarget('sleep', ['60']);
    t.teardown(() => target.stop());
    t.match(readProcFile(target.pid, 'comm'), /^sleep\n$/);
    // Our own maps is far larger than the 16 KiB starting buffer.
    const maps = readProcFile(process.pid, 'maps');
    t.ok(maps.length > 16 * 1024, `maps is ${maps.length} characters`);
    t.ok(maps.endsWith('\n') && maps.includes('[stack]'), 'read to the end');
    const gone = await reapedPid();
    t.throws(() => readProcFile(gone, 'status'), { code: 'ESRCH' }, 'a reaped pid');
    t.throws(() => readProcFile(target.pid, 'no_such_file'), { code: 'EUNSUPPORTED' }, 'a file this kernel does not have');
    t.throws(() => readProcFile(target.pid, 'status', { procRoot: '/nonexistent' }), { code: 'ESRCH' });
  });

  t.test('a process that exits between open and read: ESRCH', async (t) => {
    // The kernel's side: a read on an fd opened before the exit fails with ESRCH...
    const target = await startTarget('sleep', ['60']);
    const fd = openSync(`/proc/${target.pid}/statm`, 'r');
    await target.stop();
    t.throws(() => readSync(fd, Buffer.alloc(64), 0, 64, 0), { code: 'ESRCH' }, 'the kernel says ESRCH on read');
    closeSync(fd);
    // ...and ours: that errno on read becomes the ESRCH code.
    const fs = await import('node:fs');
    const { readProcFile: mockedRead } = t.mockRequire<typeof import('../../lib/proc/files')>('../../lib/proc/files', {
      'node:fs': {
        ...fs,
        readSync: () => {
          throw Object.assign(new Error('ESRCH: no such process, read'), { code: 'ESRCH' });
        },
      },
    });
    t.throws(() => mockedRead(process.pid, 'statm'), { code: 'ESRCH' });
  });

  t.test('ProcFile: kept open, re-read from offset 0, bound to its process', async (t) => {
    const target = await startTarget('sleep', ['60']);
    t.teardown(() => target.stop());
    const statm = new ProcFile(target.pid, 'statm');
    const first = statm.read();
    t.match(first, /^\d+ \d+ \d+ \d+ 0 \d+ 0\n$/);
    t.equal(statm.read(), first, 'read again from the start (sleep does not change its memory)');
    const maps = new ProcFile(process.pid, 'maps');
    t.ok(maps.read().length > 16 * 1024, 'a file larger than the buffer, through pread');
    maps.close();
    t.throws(() => maps.read(), { code: 'EINVAL' }, 'closed');
    maps.close();
    await target.stop();
    t.throws(() => statm.read(), { code: 'ESRCH' }, 'the process exited: its fd never reads another process');
    statm.close();
    t.throws(() => new ProcFile(target.pid, 'statm'), { code: 'ESRCH' });
    t.throws(() => new ProcFile(-1, 'statm'), { code: 'EINVAL' });
  });

  t.test('ProcFile is cheaper than open+read+close (limits.md §4: 0.7 vs 3 us for statm in C)', async (t) => {
    const kept = new ProcFile(process.pid, 'statm');
    t.teardown(() => kept.close());
    const keptNs: number[] = [];
    const openedNs: number[] = [];
    for (let i = 0; i < 2000; i++) {
      let start = process.hrtime.bigint();
      kept.read();
      keptNs.push(Number(process.hrtime.bigint() - start));
      start = process.hrtime.bigint();
      readProcFile(process.pid, 'statm');
      openedNs.push(Number(process.hrtime.bigint() - start));
    }
    const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1];
    const [k, o] = [median(keptNs), median(openedNs)];
    t.ok(k < o, `kept ${(k / 1000).toFixed(1)} us < opened ${(o / 1000).toFixed(1)} us per read`);
  });

  t.test('without capabilities: maps of another uid and a mode-000 file are EACCES, status is readable', async (t) => {
    const target = await startOtherUsersProcess();
    t.teardown(() => target.stop());
    const root = mkdtempSync(join(tmpdir(), 'allocscope-proc-'));
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    chmodSync(root, 0o755);
    mkdirSync(join(root, '1234'), { mode: 0o755 });
    writeFileSync(join(root, '1234', 'status'), 'Name:\tfake\n', { mode: 0o000 });
    const result = await withoutCapabilities<{ maps: string; status: string; fakeStatus: string }>(__filename, 'unreadable', {
      TARGET_PID: String(target.pid),
      FAKE_ROOT: root,
    });
    t.same(result, { maps: 'EACCES', status: 'none', fakeStatus: 'EACCES' });
    // The same errnos in this process (coverage does not follow the child).
    const fs = await import('node:fs');
    for (const errno of ['EACCES', 'EPERM']) {
      const { readProcFile: mockedRead } = t.mockRequire<typeof import('../../lib/proc/files')>('../../lib/proc/files', {
        'node:fs': {
          ...fs,
          openSync: () => {
            throw Object.assign(new Error(`${errno}: open`), { code: errno });
          },
        },
      });
      t.throws(() => mockedRead(process.pid, 'smaps_rollup'), { code: 'EACCES' }, errno);
    }
  });
}
