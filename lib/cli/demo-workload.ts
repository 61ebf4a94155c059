/**
 * The demo's workload: a long-lived process keeping one state across "requests", the pattern
 * known to fragment malloc (issue 5): per-request temporaries whose total size is heavy-tailed
 * (Pareto, 4 KiB up to 16 MiB) built from many small malloc'd parts (1 B - 16 KiB), while a
 * bounded, randomly evicted cache of small slices lives on; three threads (one glibc arena each).
 * Only memory that goes through malloc counts, so the parts are Buffer.allocUnsafeSlow (its
 * backing store is malloc'd), not V8 strings. Prints one JSON line: the final snapshot.
 *
 * Run as: node --expose-gc demo-workload.js SECONDS
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const CACHE_ENTRIES = 20_000;

/** A deterministic generator, so every allocator sees the same request sequence. */
function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pareto(alpha 1.1) request size in [4 KiB, 16 MiB]. */
function requestBytes(random: () => number): number {
  const min = 4096;
  const size = min / Math.pow(1 - random(), 1 / 1.1);
  return Math.min(16 * 1048576, Math.floor(size));
}

/** Serves requests until the deadline; returns the count and the cache (the state that lives on). */
function serve(seed: number, deadline: number): { requests: number; cache: Buffer[] } {
  const random = rng(seed);
  const cache: Buffer[] = [];
  let requests = 0;
  const gc = (globalThis as { gc?: () => void }).gc;
  while (Date.now() < deadline) {
    const temporaries: Buffer[] = [];
    let left = requestBytes(random);
    while (left > 0) {
      const part = Math.min(left, 1 + Math.floor(random() * random() * 16384));
      temporaries.push(Buffer.allocUnsafeSlow(part).fill(1));
      left -= part;
    }
    // The state that outlives the request: a small slice, evicting a random older one.
    const slice = Buffer.allocUnsafeSlow(64 + Math.floor(random() * 960)).fill(2);
    if (cache.length < CACHE_ENTRIES) cache.push(slice);
    else cache[Math.floor(random() * CACHE_ENTRIES)] = slice;
    temporaries.length = 0;
    requests++;
    if (requests % 100 === 0) gc?.();
  }
  gc?.();
  return { requests, cache };
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 6);
  const deadline = Date.now() + seconds * 1000;
  const workers = [1, 2].map((seed) => new Worker(__filename, { workerData: { seed, deadline } })); // inherits --expose-gc
  const counts = workers.map(
    (worker) =>
      new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }),
  );
  const own = serve(3, deadline);
  const requests = own.requests + (await Promise.all(counts)).reduce((a, b) => a + b, 0);
  (globalThis as { gc?: () => void }).gc?.();
  // Sampled while every thread still holds its cache, as a long-lived server would.
  const { snapshot } = await import('../targets/self');
  const result = { requests, cachedSlices: own.cache.length, snapshot: snapshot({ detail: 'full' }) };
  await Promise.all(workers.map((worker) => worker.terminate()));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (isMainThread) {
  void main();
} else {
  const { seed, deadline } = workerData as { seed: number; deadline: number };
  const { requests, cache } = serve(seed, deadline);
  parentPort?.postMessage(requests);
  // Keep the cache reachable until the main thread has sampled and terminates this worker.
  setInterval(() => cache.length, 1 << 30);
}
