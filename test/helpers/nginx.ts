/** A real nginx (Debian's nginx-light) on 127.0.0.1, foreground, with chosen preloads. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX = '/usr/sbin/nginx';
export const AB = '/usr/bin/ab';

export function nginxSkip(): string | false {
  if (existsSync(NGINX) && existsSync(AB)) return false;
  return process.env.CI ? false : 'nginx or ab is not installed: apt-get install nginx-light apache2-utils';
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface Nginx {
  master: number;
  port: number;
  process: ChildProcess;
  workers(): number[];
  stop(): void;
}

/** A foreground nginx configuration on a free 127.0.0.1 port, in a directory of its own. */
export async function nginxConfig(workers: number): Promise<{ dir: string; port: number; args: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'allocscope-nginx-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;\nmaster_process on;\nworker_processes ${workers};\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\n` +
      `events { worker_connections 256; }\nhttp {\n access_log off;\n client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n` +
      ` server { listen 127.0.0.1:${port}; location / { return 200 "hello from nginx\\n"; } }\n}\n`,
  );
  return { dir, port, args: ['-c', join(dir, 'nginx.conf'), '-p', dir] };
}

/** Starts nginx in the foreground; its master pid is the spawned process (exec, no shell). */
export async function startNginx(env: NodeJS.ProcessEnv, workers = 2): Promise<Nginx> {
  const { dir, port, args } = await nginxConfig(workers);
  const child = spawn(NGINX, args, { env, stdio: 'ignore' });
  const master = child.pid as number;
  const workersOf = () =>
    readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const until = Date.now() + 5000;
  while (Date.now() < until && (!existsSync(join(dir, 'nginx.pid')) || workersOf().length < workers)) await new Promise((r) => setTimeout(r, 20));
  return {
    master,
    port,
    process: child,
    workers: workersOf,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    },
  };
}

/** Runs ab against the server: bounded in count and time. Returns requests per second and failures. */
export function ab(port: number, requests: number, concurrency = 10): { rps: number; failed: number; complete: number } {
  const result = spawnSync(AB, ['-q', '-s', '10', '-n', String(requests), '-c', String(concurrency), `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: 60_000 });
  const number = (label: string) => Number(new RegExp(`${label}:\\s+([\\d.]+)`).exec(result.stdout)?.[1] ?? Number.NaN);
  return { rps: number('Requests per second'), failed: number('Failed requests'), complete: number('Complete requests') };
}
