import t from 'tap';
import { tcmalloc, tcmallocMapping, tcmallocRelease } from '../../lib/allocators/tcmalloc';
import { native, type NativeBinding } from '../../lib/binding';
import { AllocscopeError } from '../../lib/errors';
import { readerForRecord } from '../../lib/sample';
import { snapshot } from '../../lib/targets/self';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
import { heapFixture } from '../helpers/heap-fixture';

interface Outcome {
  type?: string;
  value?: unknown;
  code?: string;
  allocscopeError?: boolean;
}

function outcome(call: () => unknown): Outcome {
  try {
    const value = call();
    return { type: typeof value, value };
  } catch (error) {
    return { code: (error as { code?: string }).code, allocscopeError: error instanceof AllocscopeError };
  }
}

/** gperftools 2.10 properties (src/tcmalloc.cc TCMallocImplementation::GetNumericProperty). */
const KNOWN = [
  'generic.current_allocated_bytes',
  'generic.heap_size',
  'generic.total_physical_bytes',
  'tcmalloc.pageheap_free_bytes',
  'tcmalloc.pageheap_unmapped_bytes',
  'tcmalloc.thread_cache_free_bytes',
  'tcmalloc.central_cache_free_bytes',
  'tcmalloc.transfer_cache_free_bytes',
  'tcmalloc.current_total_thread_cache_bytes',
  'tcmalloc.max_total_thread_cache_bytes',
  'tcmalloc.slack_bytes',
] as const;
type Properties = Record<(typeof KNOWN)[number], number>;

const UNKNOWN = ['generic.nope', 'tcmalloc.nope', 'tcmalloc.page_heap_free', 'generic.physical_memory_used', 'nope.heap_size'];
const MALFORMED: unknown[] = ['', 'heap_size', 'Generic.heap_size', 'generic.', '.heap_size', 'generic heap_size', 'generic.heap-size', 'generic.heap_size\0', `generic.${'x'.repeat(250)}`, 42, null, undefined, {}];

const caches = (p: Properties) => p['tcmalloc.thread_cache_free_bytes'] + p['tcmalloc.central_cache_free_bytes'] + p['tcmalloc.transfer_cache_free_bytes'];
const readAll = () => Object.fromEntries(KNOWN.map((name) => [name, tcmalloc.property(name)])) as Properties;
const sameAll = (a: Properties, b: Properties) => KNOWN.every((name) => a[name] === b[name]);

const scenarios = {
  properties() {
    return {
      known: Object.fromEntries(KNOWN.map((name) => [name, outcome(() => tcmalloc.property(name))])),
      unknown: Object.fromEntries(UNKNOWN.map((name) => [name, outcome(() => tcmalloc.property(name))])),
      malformed: MALFORMED.map((name) => outcome(() => tcmalloc.property(name as string))),
      statsText: tcmalloc.statsText(),
    };
  },

  /**
   * The mapping's identities against properties read in the same child. Each property runs its
   * own ExtractStats, and Node's threads may allocate in between: use a round where two full
   * reads agree, and map that round's figures.
   */
  async identities() {
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Unmapped pages and page-heap free spans both present, so that no term of the mapping is 0.
    heapFixture.release(heapFixture.retain(64, 262144));
    tcmalloc.releaseFreeMemory();
    const keep = heapFixture.retain(64, 262144);
    heapFixture.release(heapFixture.retain(16, 262144));
    const snap = snapshot();
    for (let attempt = 1; attempt <= 50; attempt++) {
      const before = readAll();
      const after = readAll();
      if (sameAll(before, after)) {
        const bytes = tcmallocMapping.bytesFrom(readerForRecord(Object.fromEntries(KNOWN.map((name) => [`tcmalloc.${name}`, before[name]]))));
        heapFixture.release(keep);
        return { attempt, properties: before, bytes, snap: { bytes: snap.allocatorBytes, raw: snap.raw.tcmalloc, name: snap.allocator.name } };
      }
    }
    return null;
  },

  release() {
    // 256 x 256 KiB: large objects come from the page heap and go back to it when freed.
    const handle = heapFixture.retain(256, 262144);
    heapFixture.release(handle);
    const freeBefore = tcmalloc.property('tcmalloc.pageheap_free_bytes');
    const unmappedBefore = tcmalloc.property('tcmalloc.pageheap_unmapped_bytes');
    const result = tcmalloc.releaseFreeMemory();
    const freeAfter = tcmalloc.property('tcmalloc.pageheap_free_bytes');
    const unmappedAfter = tcmalloc.property('tcmalloc.pageheap_unmapped_bytes');
    return { freeBefore, unmappedBefore, result, freeAfter, unmappedAfter, viaRelease: tcmallocRelease() };
  },

  noStats() {
    const binding = native() as { -readonly [K in keyof NativeBinding]: NativeBinding[K] };
    binding.tcmallocStatsText = () => null;
    return { text: tcmalloc.statsText() };
  },
};

/** Children start together at load (independent processes); each test awaits its own. */
const child = childOnce(__filename);

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  const skip = skipUnlessInstalled('tcmalloc');
  if (skip === false) for (const scenario of ['properties', 'identities', 'release', 'noStats']) void child(scenario, 'tcmalloc');

  t.test('property: known names, unknown ones (ENOCTL), malformed ones (EINVAL); statsText', { skip }, async (t) => {
    const { value } = await child<{ known: Record<string, Outcome>; unknown: Record<string, Outcome>; malformed: Outcome[]; statsText: string }>('properties', 'tcmalloc');
    for (const name of KNOWN) {
      const o = value.known[name];
      t.ok(o.type === 'number' && Number.isSafeInteger(o.value) && (o.value as number) >= 0, `${name} = ${String(o.value)}`);
    }
    const k = value.known as Record<string, { value: number }>;
    t.ok(k['generic.current_allocated_bytes'].value > 1048576, 'Node has allocated more than 1 MiB');
    t.equal(k['tcmalloc.max_total_thread_cache_bytes'].value, 32 * 1048576, 'gperftools 2.10 default: 32 MiB');
    for (const name of UNKNOWN) t.same(value.unknown[name], { code: 'ENOCTL', allocscopeError: true }, name);
    value.malformed.forEach((o, at) => t.same(o, { code: 'EINVAL', allocscopeError: true }, `malformed ${String(MALFORMED[at])}`));
    t.match(value.statsText, /MALLOC:/);
    t.match(value.statsText, /Bytes in use by application/);
    t.match(value.statsText, /Bytes released to OS \(aka unmapped\)/);
  });

  t.test('mapping identities, checked against the raw properties', { skip }, async (t) => {
    const { value } = await child<{
      attempt: number;
      properties: Properties;
      bytes: Record<string, number | null>;
      snap: { bytes: Record<string, number | null>; raw: Record<string, number>; name: string };
    } | null>('identities', 'tcmalloc');
    if (value === null) {
      t.fail('two reads of all properties never agreed in 50 tries');
      return;
    }
    const p = value.properties;
    const b = value.bytes;
    t.comment(`properties stood still on attempt ${value.attempt}`);
    // The Snapshot reads the same four properties natively, and maps them the same way.
    const snap = value.snap;
    t.equal(snap.name, 'tcmalloc');
    t.same(Object.keys(snap.raw).sort(), ['generic.current_allocated_bytes', 'generic.heap_size', 'tcmalloc.pageheap_free_bytes', 'tcmalloc.pageheap_unmapped_bytes']);
    t.same(snap.bytes, tcmallocMapping.bytesFrom(readerForRecord(Object.fromEntries(Object.entries(snap.raw).map(([k, v]) => [`tcmalloc.${k}`, v])))), 'Snapshot bytes = mapping of its raw figures');
    t.ok(p['tcmalloc.pageheap_unmapped_bytes'] > 0 && p['tcmalloc.pageheap_free_bytes'] > 0 && caches(p) > 0, 'every term of the mapping is non-zero here');
    t.equal(b.allocated, p['generic.current_allocated_bytes']);
    t.equal(b.mapped, p['generic.heap_size']);
    t.equal(b.heapFree, p['tcmalloc.pageheap_free_bytes']);
    t.equal(b.retained, p['tcmalloc.pageheap_unmapped_bytes']);
    // ExtractStats: current_allocated = heap_size - thread - central - transfer - free - unmapped.
    t.equal(b.threadCache, caches(p), 'threadCache = heap_size - allocated - free - unmapped = thread + central + transfer cache free bytes');
    t.equal(b.active, p['generic.heap_size'] - p['tcmalloc.pageheap_free_bytes'] - p['tcmalloc.pageheap_unmapped_bytes'], 'active = spans in use');
    t.equal(b.resident, p['generic.heap_size'] - p['tcmalloc.pageheap_unmapped_bytes'], 'resident = heap_size - unmapped');
    // total_physical_bytes adds malloc metadata, which the mapping leaves out.
    t.ok(p['generic.total_physical_bytes'] >= (b.resident ?? Infinity), 'total_physical_bytes >= resident (metadata on top)');
    t.equal(p['tcmalloc.slack_bytes'], p['tcmalloc.pageheap_free_bytes'] + p['tcmalloc.pageheap_unmapped_bytes'], 'slack = free + unmapped');
    t.ok((b.allocated ?? 0) <= (b.active ?? 0) && (b.active ?? 0) <= (b.resident ?? 0) && (b.resident ?? 0) <= (b.mapped ?? 0), 'allocated <= active <= resident <= mapped');
    t.same([b.dirty, b.muzzy, b.metadata, b.releasable], [null, null, null, null], 'what tcmalloc cannot tell is null');
  });

  t.test('releaseFreeMemory: page-heap free spans go back to the kernel, measured', { skip }, async (t) => {
    const { value: v } = await child<{
      freeBefore: number;
      unmappedBefore: number;
      freeAfter: number;
      unmappedAfter: number;
      result: { allocator: string; action: string; rssBeforeBytes: number; rssAfterBytes: number; returnedBytes: number; note: string };
      viaRelease: { allocator: string; action: string };
    }>('release', 'tcmalloc');
    t.ok(v.freeBefore >= 48 * 1048576, `64 MiB freed: ${v.freeBefore} B free in the page heap`);
    // Other threads of the child free pages of their own meanwhile: a few MiB of the 64 freed.
    t.ok(v.freeAfter < 4 * 1048576, `after release ${v.freeAfter} B free`);
    t.ok(v.unmappedAfter - v.unmappedBefore >= 48 * 1048576, `unmapped grew by ${v.unmappedAfter - v.unmappedBefore}`);
    t.equal(v.result.allocator, 'tcmalloc');
    t.equal(v.result.action, 'MallocExtension_ReleaseFreeMemory()');
    t.equal(v.result.returnedBytes, v.result.rssBeforeBytes - v.result.rssAfterBytes);
    t.ok(v.result.returnedBytes >= 48 * 1048576, `RSS dropped by ${v.result.returnedBytes}`);
    t.match(v.result.note, /returned .* MiB to the kernel/);
    t.same([v.viaRelease.allocator, v.viaRelease.action], ['tcmalloc', 'MallocExtension_ReleaseFreeMemory()'], 'purge() of the allocator table');
  });

  t.test('tcmalloc calls in a glibc process: ENOALLOCATOR, after the argument check', async (t) => {
    t.throws(() => tcmalloc.property('generic.heap_size'), { code: 'ENOALLOCATOR' });
    t.throws(() => tcmalloc.releaseFreeMemory(), { code: 'ENOALLOCATOR' });
    t.throws(() => tcmalloc.statsText(), { code: 'ENOALLOCATOR' });
    t.throws(() => tcmallocRelease(), { code: 'ENOALLOCATOR' });
    t.throws(() => tcmalloc.property('Not A Property'), { code: 'EINVAL' });
  });

  t.test('statsText without MallocExtension_GetStats is empty, not an error', { skip }, async (t) => {
    // Simulated at the binding (the probe returns null when dlsym finds no GetStats).
    const { value } = await child<{ text: string }>('noStats', 'tcmalloc');
    t.equal(value.text, '');
  });

  t.test('mapping: tcmalloc properties -> Snapshot fields', async (t) => {
    const raw = {
      'tcmalloc.generic.current_allocated_bytes': 1000,
      'tcmalloc.generic.heap_size': 10000,
      'tcmalloc.tcmalloc.pageheap_free_bytes': 3000,
      'tcmalloc.tcmalloc.pageheap_unmapped_bytes': 2000,
    };
    t.same(tcmallocMapping.bytesFrom(readerForRecord(raw)), {
      allocated: 1000,
      active: 5000,
      resident: 8000,
      mapped: 10000,
      retained: 2000,
      dirty: null,
      muzzy: null,
      metadata: null,
      threadCache: 4000,
      heapFree: 3000,
      releasable: null,
    });
    for (const missing of Object.keys(raw)) {
      const { [missing]: _gone, ...rest } = raw as Record<string, number>;
      t.equal(tcmallocMapping.bytesFrom(readerForRecord(rest)), null, `no ${missing}: no totals`);
    }
    t.same(tcmallocMapping.extraRatios({} as never, {} as never), {});
    t.same([tcmallocMapping.name, tcmallocMapping.rawKey, tcmallocMapping.slotPrefix, tcmallocMapping.costClass], ['tcmalloc', 'tcmalloc', 'tcmalloc.', 'moderate']);
  });
}
