import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import schema from '../schema/snapshot.v1.json';
import { serve } from '../lib/serve';
import { agentRequest, readAgentSnapshot } from '../lib/targets/agent';
import { scenarioName } from './helpers/child';
import { waitFor } from './helpers/workload';

const base = mkdtempSync(join(tmpdir(), 'allocscope-serve-'));
const own = join(base, 'own');

if (scenarioName() === 'serve-forever') {
  // A Node "service": serves, keeps a timer (its own work) so it stays up until killed.
  void serve({ dir: process.env.SERVE_DIR }).then((handle) => {
    process.stdout.write(`serving ${handle.path}\n`);
    setInterval(() => Buffer.allocUnsafeSlow(4096), 50);
  });
} else {
  t.teardown(() => rmSync(base, { recursive: true, force: true }));

  t.test('another Node process is read through its serve() socket, with V8 figures', async (t) => {
    const child = spawn(process.execPath, [...process.execArgv, __filename], { env: { ...process.env, ALLOCSCOPE_SCENARIO: 'serve-forever', SERVE_DIR: own }, stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => child.kill('SIGKILL'));
    const pid = child.pid as number;
    t.ok(await waitFor(() => existsSync(join(own, `${pid}.sock`)), 30_000), 'socket appears');
    t.equal(lstatSync(own).mode & 0o777, 0o700, 'directory 0700');
    t.equal(lstatSync(join(own, `${pid}.sock`)).mode & 0o777, 0o600, 'socket 0600');
    const s = await readAgentSnapshot(pid, { dir: own, detail: 'full' });
    t.ok(new Ajv2020().validate(schema, s));
    t.equal(s.pid, pid);
    t.equal(s.allocator.name, 'glibc');
    t.ok((s.v8Bytes?.heapUsed ?? 0) > 0, 'V8 heap from a Node target');
    t.ok((s.allocatorBytes.allocated ?? 0) > 0 && s.processBytes.rssFile !== null);
    const trim = await agentRequest(pid, { op: 'trim' }, { dir: own });
    t.match(String(trim.action), /malloc_trim/);
    const stats = await agentRequest(pid, { op: 'stats-text' }, { dir: own });
    t.match(String(stats.text), /^<malloc version="1">/);
    await t.rejects(agentRequest(pid, { op: 'explode' }, { dir: own }), { code: 'EPROTO' });
    const script = `require('net').createConnection(${JSON.stringify(join(own, `${pid}.sock`))}).on('error', (e) => { console.log(e.code); process.exit(0); }).on('data', (d) => { console.log(String(d)); process.exit(0); }).on('connect', function () { this.write('{"v":1,"op":"snapshot"}\\n'); });`;
    const nobody = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 });
    t.equal(nobody.stdout.trim(), 'EACCES', 'another uid is refused');
  });

  t.test('in-process: serve(), read it, close() removes the socket; a second serve() is refused', async (t) => {
    const handle = await serve({ dir: own });
    await t.rejects(serve({ dir: own }), { code: 'EINVAL' });
    const s = await readAgentSnapshot(process.pid, { dir: own });
    t.equal(s.source, 'agent');
    const lines = await new Promise<string[]>((resolve, reject) => {
      const socket = createConnection(handle.path);
      let text = '';
      socket.on('connect', () => socket.write('garbage\n{"v":2}\n{"v":1,"op":"info"}\n'));
      socket.on('data', (d) => {
        text += d;
        if (text.split('\n').length > 3) {
          socket.end();
          resolve(text.split('\n').slice(0, 3));
        }
      });
      socket.on('error', reject);
    });
    t.same(lines.map((l) => JSON.parse(l).ok), [false, false, true]);
    t.equal(JSON.parse(lines[0]).error.code, 'EPROTO');
    await handle.close();
    t.notOk(existsSync(handle.path), 'socket removed');
  });

  t.test('untrusted directories and bad options are refused', async (t) => {
    const planted = join(base, 'planted');
    mkdirSync(planted, { mode: 0o700 });
    chownSync(planted, 65534, 65534);
    const open = join(base, 'open');
    mkdirSync(open, { mode: 0o755 });
    const link = join(base, 'link');
    symlinkSync(own, link);
    await t.rejects(serve({ dir: planted }), { code: 'EACCES' }, 'owned by another user');
    await t.rejects(serve({ dir: open }), { code: 'EACCES' }, 'readable by others');
    await t.rejects(serve({ dir: link }), { code: 'EACCES' }, 'a symlink');
    await t.rejects(serve({ dir: '' }), { code: 'EINVAL' });
    await t.rejects(serve(5 as unknown as object), { code: 'EINVAL' });
    await t.rejects(serve({ dir: '/proc/no-such-place/x' }), { code: 'EACCES' });
  });
}
