#!/usr/bin/env node
// The direct side of the compare benchmark, in a fresh Node process as compare's own load runs:
// starts the server under one variant's allocator (no agent), waits for its port (untimed), drives
// it with compare's built-in load generator (no sampling) and prints the load phase's wall time.
//   node direct-load.js VARIANT REQUESTS STEP CONCURRENCY -- SERVER ARGS ({port} replaced)
'use strict';
const { spawn } = require('node:child_process');
const { join } = require('node:path');
const root = join(__dirname, '..', '..', '..');
const { builtinLoad } = require(join(root, 'dist', 'compare', 'load.js'));
const { freePort, portOpen } = require(join(root, 'dist', 'compare', 'server.js'));
const { parseVariant } = require(join(root, 'dist', 'compare', 'variants.js'));
const { ALLOCATOR_LIBRARIES } = require(join(root, 'dist', 'allocators', 'libraries.js'));

async function main() {
  const [label, requests, step, concurrency, dashes, ...server] = process.argv.slice(2);
  if (dashes !== '--' || server.length === 0) throw new Error('usage: direct-load.js VARIANT REQUESTS STEP CONCURRENCY -- SERVER ARGS');
  const variant = parseVariant(label);
  const port = await freePort();
  const env = { ...process.env, ...variant.env };
  delete env.LD_PRELOAD;
  const library = ALLOCATOR_LIBRARIES[variant.allocator];
  if (library !== undefined) env.LD_PRELOAD = library.path;
  const argv = server.map((a) => a.replaceAll('{port}', String(port)));
  const child = spawn(argv[0], argv.slice(1), { env, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const until = performance.now() + 10_000;
  while (!(await portOpen('127.0.0.1', port, 200))) {
    if (performance.now() > until) throw new Error('the server did not listen');
    await new Promise((r) => setTimeout(r, 20));
  }
  const result = await builtinLoad({
    url: new URL(`http://127.0.0.1:${port}/`),
    requests: Number(requests),
    step: Number(step),
    concurrency: Number(concurrency),
    deadline: performance.now() + 600_000,
    signal: new AbortController().signal,
    onStep: () => undefined,
  });
  child.kill('SIGTERM');
  await exited;
  if (result.endedBy !== 'done') throw new Error(`the load ended by ${result.endedBy}`);
  process.stdout.write(`${JSON.stringify({ loadMs: result.elapsedMs, completed: result.completed })}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
