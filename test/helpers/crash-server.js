// A tiny HTTP server for compare's tests, steered by its environment (so a compare variant's
// `:K=V` part can steer it): CRASH_AFTER=N aborts (SIGABRT) on request N; EXIT_ON_TERM=C exits
// with status C on SIGTERM; EXIT_AT_START=C exits at once; NEVER_LISTEN=1 never listens.
// Usage: node crash-server.js PORT
'use strict';
const http = require('node:http');

const port = Number(process.argv[2]);
if (process.env.EXIT_AT_START) {
  process.stderr.write('crash-server: told to exit at start\n');
  process.exit(Number(process.env.EXIT_AT_START));
}
if (process.env.EXIT_ON_TERM) process.on('SIGTERM', () => process.exit(Number(process.env.EXIT_ON_TERM)));
const crashAfter = Number(process.env.CRASH_AFTER || 0);
let served = 0;
const kept = [];
const server = http.createServer((req, res) => {
  served++;
  if (crashAfter > 0 && served >= crashAfter) {
    process.stderr.write(`crash-server: crashing at request ${served}\n`);
    process.abort();
  }
  // Some memory that goes through malloc and lives on, so RSS moves a little.
  kept.push(Buffer.allocUnsafeSlow(256));
  if (kept.length > 5000) kept.shift();
  res.end('ok\n');
});
if (process.env.NEVER_LISTEN) setInterval(() => undefined, 1000);
else server.listen(port, '127.0.0.1');
