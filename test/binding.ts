import t from 'tap';
import { readFileSync } from 'node:fs';
import { checkPlatform, currentPlatform, native } from '../lib/binding';

t.test('the addon loads and exports every function of NativeBinding', async (t) => {
  const binding = native();
  for (const name of ['detect', 'sampleSlotNames', 'sampleInto', 'sampleAsync', 'glibcMallinfo2', 'glibcMallocInfo', 'glibcMallocInfoAsync', 'glibcMallocTrim', 'jemallocReadAny', 'jemallocReadString', 'jemallocWrite', 'jemallocBins', 'jemallocStatsPrint', 'jemallocPurge', 'tcmallocProperty', 'tcmallocReleaseFreeMemory', 'tcmallocStatsText', 'mimallocProcessInfo', 'mimallocCollect', 'peerCredentials']) {
    t.type((binding as unknown as Record<string, unknown>)[name], 'function', name);
  }
  t.equal(native(), binding, 'loaded once');
});

t.test('this platform is supported: Linux with glibc', async (t) => {
  const facts = currentPlatform();
  t.equal(facts.platform, 'linux');
  t.match(facts.glibcVersionRuntime, /^2\.\d+/);
  t.doesNotThrow(() => checkPlatform(facts));
});

t.test('non-Linux and musl platforms are refused with EUNSUPPORTED', async (t) => {
  t.throws(() => checkPlatform({ platform: 'darwin', glibcVersionRuntime: undefined }), { code: 'EUNSUPPORTED' });
  t.throws(() => checkPlatform({ platform: 'win32', glibcVersionRuntime: undefined }), { code: 'EUNSUPPORTED' });
  t.throws(() => checkPlatform({ platform: 'linux', glibcVersionRuntime: undefined }), { code: 'EUNSUPPORTED' }, 'musl');
});

t.test('sampleInto: the array passed stays bound; another array, a detached one, a wrong one', async (t) => {
  const binding = native();
  const names = binding.sampleSlotNames();
  const at = (name: string) => names.indexOf(name);
  const first = new Float64Array(names.length);
  const second = new Float64Array(names.length + 4);
  binding.sampleInto(first, 0, 0);
  t.ok(first[at('statm.resident')] > 0, 'RSS in pages');
  t.ok(Number.isNaN(first[at('allocatorStatus')]), 'no allocator read without the flag');
  const stamp = first[at('monotonicNs')];
  binding.sampleInto(second, 1, 2); // glibc, with the allocator read
  t.equal(first[at('monotonicNs')], stamp, 'another array was bound: the first is left alone');
  t.equal(second[at('allocatorStatus')], 0, 'glibc mallinfo2 read into the second');
  // Under ASan (scripts/asan-test) ASan's malloc serves the process and glibc's arenas stay empty.
  const underAsan = readFileSync('/proc/self/maps', 'utf8').includes('libasan');
  t.ok(underAsan ? second[at('mallinfo2.arena')] >= 0 : second[at('mallinfo2.arena')] > 0, 'glibc arena bytes');
  t.ok(second[at('monotonicNs')] > stamp);
  binding.sampleInto(first, 0, 0);
  t.ok(first[at('monotonicNs')] > second[at('monotonicNs')], 'and back to the first');

  // A buffer transferred away leaves the array with length 0: it is bound again, and refused.
  structuredClone(first.buffer, { transfer: [first.buffer] });
  t.throws(() => binding.sampleInto(first, 0, 0), { name: 'RangeError', message: /too short|detached/ });
  t.throws(() => binding.sampleInto(new Float64Array(3), 0, 0), { name: 'RangeError' });
  t.throws(() => binding.sampleInto(new Uint8Array(names.length * 8) as unknown as Float64Array, 0, 0), { name: 'TypeError' });
  binding.sampleInto(second, 0, 0);
  t.ok(second[at('statm.resident')] > 0, 'a good array after refused ones is bound and sampled');
});

// The worker loads the compiled dist/ (as test/targets/self.ts does): a worker has no TypeScript loader.
t.test('the bound slots are per thread: a worker has none until it binds its own', async (t) => {
  const { Worker } = await import('node:worker_threads');
  const code = `
    const { parentPort } = require('node:worker_threads');
    const { native } = require(${JSON.stringify(require.resolve('../dist/binding.js'))});
    const binding = native();
    let unbound = null;
    try { binding.sampleBound(0, 0); } catch (error) { unbound = error.message; }
    const slots = new Float64Array(binding.sampleSlotNames().length);
    binding.sampleInto(slots, 0, 0);
    parentPort.postMessage({ unbound, resident: slots[binding.sampleSlotNames().indexOf('statm.resident')] });`;
  const worker = new Worker(code, { eval: true });
  const result = await new Promise<{ unbound: string | null; resident: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  t.match(result.unbound, /bindSlots first/, 'sampleBound before bindSlots throws in the new thread');
  t.ok(result.resident > 0, 'then samples into its own array');
  // The main thread's binding is untouched by the worker's.
  const main = new Float64Array(native().sampleSlotNames().length);
  native().sampleInto(main, 0, 0);
  t.ok(main[native().sampleSlotNames().indexOf('statm.resident')] > 0);
});
