'use strict';
// The benchmark's HTTP service: node:http answering a small JSON body, with allocscope's monitor
// off or sampling at the rate given (Hz). Reports its CPU time and the monitor's own accounting
// when the parent asks (IPC), so the parent can compare CPU per request across modes.
const http = require('node:http');
const { monitor } = require('../../../dist/monitor');

const hz = process.argv[2] === 'off' ? 0 : Number(process.argv[2]);
const items = Array.from({ length: 32 }, (_, i) => ({ id: i, name: `item-${i}` }));
const server = http.createServer((req, res) => {
  const body = JSON.stringify({ path: req.url, time: Date.now(), items });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
const watcher = hz > 0 ? monitor({ intervalMs: 1000 / hz }) : null;
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (message) => {
  if (message === 'report') process.send({ cpu: process.cpuUsage(), stats: watcher === null ? null : watcher.stats() });
  if (message === 'exit') {
    watcher?.stop();
    server.close();
    process.exit(0);
  }
});
