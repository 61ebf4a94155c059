import t from 'tap';
import fc from 'fast-check';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARENAS_ALL, jemalloc, jemallocMapping, jemallocRelease, smallBinFragOf, type JemallocBin } from '../../lib/allocators/jemalloc';
import { native, type NativeBinding } from '../../lib/binding';
import { slotNames } from '../../lib/allocators/live';
import { AllocscopeError, describe } from '../../lib/errors';
import { readerForRecord } from '../../lib/sample';
import { snapshot } from '../../lib/targets/self';
import { childOnce, runScenario, scenarioName, skipUnlessInstalled } from '../helpers/child';
import { heapFixture } from '../helpers/heap-fixture';

/** An outcome of a call, as JSON can carry it: the value (with its JS type) or the error code. */
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

const BLOCKS = 20_000;
const SETTINGS_CONF = { MALLOC_CONF: 'narenas:3,dirty_decay_ms:1234,muzzy_decay_ms:567,tcache:false' };

const read = (name: unknown, type?: unknown) => jemalloc.read(name as string, type as 'size_t');
const write = (name: unknown, value?: unknown) => jemalloc.write(name as string, value as number);

/** Bad input, each with the code it must throw (shared by the child that runs it and the parent). */
const BAD_INPUT: ReadonlyArray<readonly [string, () => unknown, string]> = [
  // Unknown names: jemalloc says ENOENT.
  ['read unknown top-level', () => read('nope'), 'ENOCTL'],
  ['read unknown leaf', () => read('stats.nope'), 'ENOCTL'],
  ['read unknown opt', () => read('opt.nope'), 'ENOCTL'],
  ['read partial path', () => read('stats.arenas.0'), 'ENOCTL'],
  ['read a path too deep', () => read('stats.allocated.x'), 'ENOCTL'],
  ['read an arena index past narenas', () => read('stats.arenas.4000.pactive'), 'ENOCTL'],
  ['read a bin index past nbins + 1', () => read('arenas.bin.37.size'), 'ENOCTL'],
  ['write unknown name', () => write('stats.nope', 1), 'ENOCTL'],
  // Malformed names never reach jemalloc.
  ['read empty name', () => read(''), 'EINVAL'],
  ['read upper case', () => read('Stats.allocated'), 'EINVAL'],
  ['read double dot', () => read('stats..allocated'), 'EINVAL'],
  ['read trailing dot', () => read('stats.allocated.'), 'EINVAL'],
  ['read leading dot', () => read('.stats.allocated'), 'EINVAL'],
  ['read with a space', () => read('stats allocated'), 'EINVAL'],
  ['read with a NUL', () => read('stats.allocated\0junk'), 'EINVAL'],
  ['read 257 characters', () => read(`stats.${'a'.repeat(251)}`), 'EINVAL'],
  ['read index with a suffix', () => read('arena.0x.dss'), 'EINVAL'],
  ['write index with a suffix (would reach arena.0.dss with a pointer)', () => write('arena.0a.dss', 2 ** 40), 'EINVAL'],
  ['read a number as name', () => read(42), 'EINVAL'],
  ['read null as name', () => read(null), 'EINVAL'],
  ['read no name', () => read(undefined), 'EINVAL'],
  ['write an object as name', () => write({}, 1), 'EINVAL'],
  ['read with an unknown type', () => read('opt.narenas', 'float'), 'EINVAL'],
  ['read with type toString', () => read('opt.narenas', 'toString'), 'EINVAL'],
  ['read with type __proto__', () => read('opt.narenas', '__proto__'), 'EINVAL'],
  ['read with a numeric type', () => read('opt.narenas', 4), 'EINVAL'],
  ['read with a width that is not the control', () => read('opt.narenas', 'size_t'), 'EINVAL'],
  ['read a string control as a number', () => read('version', 'size_t'), 'EINVAL'],
  ['read a number control as a string', () => read('stats.allocated', 'string'), 'EINVAL'],
  ['read a write-only control', () => read('arena.0.purge'), 'EINVAL'],
  // Wrong value types for writes.
  ['string to a signed number', () => write('arenas.dirty_decay_ms', 'x'), 'EINVAL'],
  ['string to a size_t', () => write('arena.0.retain_grow_limit', '4096'), 'EINVAL'],
  ['boolean to a size_t', () => write('arena.0.retain_grow_limit', true), 'EINVAL'],
  ['boolean to an ssize_t', () => write('arenas.dirty_decay_ms', false), 'EINVAL'],
  ['number to a bool', () => write('thread.tcache.enabled', 1), 'EINVAL'],
  ['bigint to a bool', () => write('background_thread', 0n), 'EINVAL'],
  ['fraction', () => write('arenas.dirty_decay_ms', 1.5), 'EINVAL'],
  ['NaN', () => write('arenas.dirty_decay_ms', NaN), 'EINVAL'],
  ['Infinity', () => write('arenas.dirty_decay_ms', Infinity), 'EINVAL'],
  ['unsafe integer', () => write('arenas.dirty_decay_ms', 2 ** 53), 'EINVAL'],
  ['null', () => write('arenas.dirty_decay_ms', null), 'EINVAL'],
  ['object', () => write('arenas.dirty_decay_ms', {}), 'EINVAL'],
  ['array', () => write('arenas.dirty_decay_ms', [1]), 'EINVAL'],
  ['symbol', () => write('arenas.dirty_decay_ms', Symbol('x')), 'EINVAL'],
  ['function', () => write('arenas.dirty_decay_ms', () => 1), 'EINVAL'],
  ['negative to unsigned', () => write('arena.0.retain_grow_limit', -1), 'EINVAL'],
  ['2^32 to a 4-byte control', () => write('thread.arena', 2 ** 32), 'EINVAL'],
  ['2^64 to an 8-byte control', () => write('epoch', 2n ** 64n), 'EINVAL'],
  ['2^63 to a signed control', () => write('arenas.dirty_decay_ms', 2n ** 63n), 'EINVAL'],
  ['below -2^63', () => write('arenas.dirty_decay_ms', -(2n ** 63n) - 1n), 'EINVAL'],
  ['number to a string control', () => write('arena.0.dss', 1), 'EINVAL'],
  ['string with a NUL to a string control', () => write('arena.0.dss', 'primary\0'), 'EINVAL'],
  ['4097 characters to a string control', () => write('arena.0.dss', 'x'.repeat(4097)), 'EINVAL'],
  ['unknown dss mode', () => write('arena.0.dss', 'tertiary'), 'EINVAL'],
  ['a value to an action', () => write('arena.0.purge', 1), 'EINVAL'],
  ['no value to a value control', () => write('epoch'), 'EINVAL'],
  ['thread.arena out of range', () => write('thread.arena', 4000), 'EINVAL'],
  // Read-only controls.
  ['write stats.allocated', () => write('stats.allocated', 1), 'EINVAL'],
  ['write stats.allocated without a value', () => write('stats.allocated'), 'EINVAL'],
  ['write opt.narenas', () => write('opt.narenas', 4), 'EINVAL'],
  ['write opt.retain', () => write('opt.retain', false), 'EINVAL'],
  ['write version', () => write('version', '6.0.0'), 'EINVAL'],
  ['write arenas.page', () => write('arenas.page', 8192), 'EINVAL'],
  // Controls allocscope refuses.
  ['arena.0.extent_hooks', () => write('arena.0.extent_hooks', 1), 'EUNSUPPORTED'],
  ['arena.0.reset', () => write('arena.0.reset'), 'EUNSUPPORTED'],
  ['arena.0.destroy', () => write('arena.0.destroy'), 'EUNSUPPORTED'],
  ['experimental.hooks.install', () => write('experimental.hooks.install', 0), 'EUNSUPPORTED'],
  ['tcache.flush', () => write('tcache.flush', 0), 'EUNSUPPORTED'],
  ['arenas.lookup write', () => write('arenas.lookup', 4096), 'EUNSUPPORTED'],
  ['arenas.lookup read', () => read('arenas.lookup'), 'EUNSUPPORTED'],
  ['arenas.create write', () => write('arenas.create'), 'EUNSUPPORTED'],
  ['tcache.create write', () => write('tcache.create'), 'EUNSUPPORTED'],
  // Other calls' arguments.
  ['statsJson unknown letter', () => jemalloc.statsJson('Z'), 'EINVAL'],
  ['statsJson JSON letter twice', () => jemalloc.statsJson('J'), 'EINVAL'],
  ['statsJson number', () => jemalloc.statsJson(5 as unknown as string), 'EINVAL'],
  ['summary null', () => jemalloc.summary(null as unknown as object), 'EINVAL'],
  ['summary string', () => jemalloc.summary('no' as unknown as object), 'EINVAL'],
  ['summary advanceEpoch not boolean', () => jemalloc.summary({ advanceEpoch: 0 as unknown as boolean }), 'EINVAL'],
];

// ---- the fuzz: names from jemalloc 5.3's ctl tree (src/ctl.c), mutated names, garbage ----

const WORDS = {
  thread: ['arena', 'allocated', 'allocatedp', 'deallocated', 'deallocatedp', 'idle', 'tcache.enabled', 'tcache.flush', 'peak.read', 'peak.reset', 'prof.name', 'prof.active'],
  config: ['cache_oblivious', 'debug', 'fill', 'lazy_lock', 'malloc_conf', 'opt_safety_checks', 'prof', 'prof_libgcc', 'prof_libunwind', 'stats', 'utrace', 'xmalloc'],
  opt: (
    'abort abort_conf cache_oblivious trust_madvise confirm_conf hpa hpa_slab_max_alloc hpa_hugification_threshold hpa_hugify_delay_ms ' +
    'hpa_min_purge_interval_ms hpa_dirty_mult hpa_sec_nshards hpa_sec_max_alloc hpa_sec_max_bytes hpa_sec_bytes_after_flush ' +
    'hpa_sec_batch_fill_extra metadata_thp retain dss narenas percpu_arena oversize_threshold mutex_max_spin background_thread ' +
    'max_background_threads dirty_decay_ms muzzy_decay_ms stats_print stats_print_opts stats_interval stats_interval_opts junk zero ' +
    'utrace xmalloc experimental_infallible_new tcache tcache_max tcache_nslots_small_min tcache_nslots_small_max tcache_nslots_large ' +
    'lg_tcache_nslots_mul tcache_gc_incr_bytes tcache_gc_delay_bytes lg_tcache_flush_small_div lg_tcache_flush_large_div thp ' +
    'lg_extent_max_active_fit prof prof_prefix prof_active prof_thread_active_init lg_prof_sample lg_prof_interval prof_gdump ' +
    'prof_final prof_leak prof_leak_error prof_accum prof_recent_alloc_max prof_stats prof_sys_thread_name prof_time_resolution ' +
    'lg_san_uaf_align zero_realloc'
  ).split(' '),
  arenaI: ['initialized', 'decay', 'purge', 'reset', 'destroy', 'dss', 'oversize_threshold', 'dirty_decay_ms', 'muzzy_decay_ms', 'extent_hooks', 'retain_grow_limit'],
  arenas: ['narenas', 'dirty_decay_ms', 'muzzy_decay_ms', 'quantum', 'page', 'tcache_max', 'nbins', 'nhbins', 'nlextents', 'create', 'lookup'],
  prof: ['thread_active_init', 'active', 'dump', 'gdump', 'prefix', 'reset', 'interval', 'lg_sample', 'log_start', 'log_stop'],
  stats: ['allocated', 'active', 'metadata', 'metadata_thp', 'resident', 'mapped', 'retained', 'zero_reallocs', 'mutexes.reset', 'background_thread.num_threads', 'background_thread.num_runs', 'background_thread.run_interval'],
  statsArenaI: (
    'nthreads uptime dss dirty_decay_ms muzzy_decay_ms pactive pdirty pmuzzy mapped retained extent_avail dirty_npurge dirty_nmadvise ' +
    'dirty_purged muzzy_npurge muzzy_nmadvise muzzy_purged base internal metadata_thp tcache_bytes tcache_stashed_bytes resident ' +
    'abandoned_vm hpa_sec_bytes hpa_shard.npurge_passes hpa_shard.npurges hpa_shard.nhugifies hpa_shard.ndehugifies'
  ).split(' '),
  bin: ['nmalloc', 'ndalloc', 'nrequests', 'curregs', 'nfills', 'nflushes', 'nslabs', 'nreslabs', 'curslabs', 'nonfull_slabs'],
  mutex: ['num_ops', 'num_wait', 'num_spin_acq', 'num_owner_switch', 'total_wait_time', 'max_wait_time', 'max_num_thds'],
  globalMutexes: ['background_thread', 'max_per_bg_thd', 'ctl', 'prof', 'prof_thds_data', 'prof_dump', 'prof_recent_alloc', 'prof_recent_dump', 'prof_stats'],
  arenaMutexes: ['large', 'extent_avail', 'extents_dirty', 'extents_muzzy', 'extents_retained', 'decay_dirty', 'decay_muzzy', 'base', 'tcache_list', 'hpa_shard', 'hpa_shard_grow', 'hpa_sec'],
  hpaSlabs: ['npageslabs_nonhuge', 'npageslabs_huge', 'nactive_nonhuge', 'nactive_huge', 'ndirty_nonhuge', 'ndirty_huge'],
  experimental: [
    'hooks.install', 'hooks.remove', 'hooks.prof_backtrace', 'hooks.prof_dump', 'hooks.safety_check_abort', 'thread.activity_callback',
    'utilization.query', 'utilization.batch_query', 'arenas_create_ext', 'prof_recent.alloc_max', 'prof_recent.alloc_dump', 'batch_alloc',
  ],
};

/** Name templates: <i> is an arena index, <j> a bin/extent index. */
const TEMPLATES: readonly string[] = [
  'version', 'epoch', 'background_thread', 'max_background_threads',
  ...WORDS.thread.map((w) => `thread.${w}`),
  ...WORDS.config.map((w) => `config.${w}`),
  ...WORDS.opt.map((w) => `opt.${w}`),
  'tcache.create', 'tcache.flush', 'tcache.destroy',
  ...WORDS.arenaI.map((w) => `arena.<i>.${w}`),
  ...WORDS.arenas.map((w) => `arenas.${w}`),
  'arenas.bin.<j>.size', 'arenas.bin.<j>.nregs', 'arenas.bin.<j>.slab_size', 'arenas.bin.<j>.nshards', 'arenas.lextent.<j>.size',
  ...WORDS.prof.map((w) => `prof.${w}`),
  'prof.stats.bins.<j>.live', 'prof.stats.bins.<j>.accum', 'prof.stats.lextents.<j>.live', 'prof.stats.lextents.<j>.accum',
  ...WORDS.stats.map((w) => `stats.${w}`),
  ...WORDS.globalMutexes.flatMap((m) => WORDS.mutex.map((f) => `stats.mutexes.${m}.${f}`)),
  ...WORDS.statsArenaI.map((w) => `stats.arenas.<i>.${w}`),
  ...['small', 'large'].flatMap((k) => ['allocated', 'nmalloc', 'ndalloc', 'nrequests', 'nfills', 'nflushes'].map((w) => `stats.arenas.<i>.${k}.${w}`)),
  ...WORDS.bin.map((w) => `stats.arenas.<i>.bins.<j>.${w}`),
  ...WORDS.mutex.map((f) => `stats.arenas.<i>.bins.<j>.mutex.${f}`),
  ...['nmalloc', 'ndalloc', 'nrequests', 'curlextents'].map((w) => `stats.arenas.<i>.lextents.<j>.${w}`),
  ...['ndirty', 'nmuzzy', 'nretained', 'dirty_bytes', 'muzzy_bytes', 'retained_bytes'].map((w) => `stats.arenas.<i>.extents.<j>.${w}`),
  ...WORDS.arenaMutexes.flatMap((m) => WORDS.mutex.map((f) => `stats.arenas.<i>.mutexes.${m}.${f}`)),
  ...['full_slabs', 'empty_slabs'].flatMap((k) => WORDS.hpaSlabs.map((w) => `stats.arenas.<i>.hpa_shard.${k}.${w}`)),
  ...WORDS.hpaSlabs.map((w) => `stats.arenas.<i>.hpa_shard.nonfull_slabs.<j>.${w}`),
  ...WORDS.experimental.map((w) => `experimental.${w}`),
  'experimental.arenas.<i>.pactivep',
];

/** Every word of the tree, for mutations that put a real word in the wrong place. */
const VOCABULARY = [...new Set(TEMPLATES.flatMap((name) => name.split('.')).filter((w) => !w.startsWith('<')))];

// Indices around the edges jemalloc checks: narenas (9 by default here; 3 with the MALLOC_CONF
// of the settings test), MALLCTL_ARENAS_ALL 4096 and _DESTROYED 4097, nbins 36, nlextents 196.
const INDEX = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('0', '1', '2', '8', '9', '10', '35', '36', '37', '195', '196', '197', '199', '200', '4095', '4096', '4097', '4098') },
  { weight: 2, arbitrary: fc.nat({ max: 5000 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom('00', '007', '4294967296', '18446744073709551615', '18446744073709551616', '99999999999999999999999') },
);

const REAL_NAME = fc
  .tuple(fc.constantFrom(...TEMPLATES), INDEX, INDEX)
  .map(([template, i, j]) => template.replace('<i>', i).replace('<j>', j));

const MUTATIONS: ReadonlyArray<(parts: string[], n: number, text: string) => string> = [
  (parts, n) => parts.filter((_, at) => at !== n % parts.length).join('.'), // drop a component
  (parts, n) => [...parts.slice(0, (n % parts.length) + 1), ...parts.slice(n % parts.length)].join('.'), // duplicate one
  (parts, n) => [...parts, VOCABULARY[n % VOCABULARY.length]].join('.'), // one level too deep
  (parts, n) => parts.map((p, at) => (at === n % parts.length ? VOCABULARY[(n * 7) % VOCABULARY.length] : p)).join('.'), // wrong word
  (parts, n) => parts.join('.').slice(0, n % (parts.join('.').length + 1)), // truncated
  (parts, n) => {
    const name = parts.join('.');
    const at = n % name.length;
    return name.slice(0, at) + name.charAt(at).toUpperCase() + name.slice(at + 1);
  },
  (parts, n, text) => {
    const name = parts.join('.');
    const at = n % (name.length + 1);
    return name.slice(0, at) + text + name.slice(at); // inserted text
  },
  (parts, n, text) => parts.map((p) => (/^\d+$/.test(p) ? p + ['x', 'a', ' ', '-1', '+1', '.', 'e3', text][n % 8] : p)).join('.'), // index suffixes
  (parts, n) => ['.', '..', ' ', '\0', '\n'][n % 5] + parts.join('.'),
  (parts, n) => parts.join('.') + ['.', '..', ' ', '\0', '\n', '.0'][n % 6],
  (parts) => parts.join('..'),
  (parts, n) => parts.join('.').repeat(2 + (n % 40)), // long, often beyond 256 characters
  (parts) => parts.reverse().join('.'),
  (parts, n) => parts.join(['/', '_', ':', ''][n % 4]),
];

const MUTATED_NAME = fc
  .tuple(REAL_NAME, fc.nat({ max: MUTATIONS.length - 1 }), fc.nat(), fc.string({ maxLength: 4 }))
  .map(([name, kind, n, text]) => MUTATIONS[kind](name.split('.'), n, text));

const GARBAGE_NAME = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.stringMatching(/^[a-z0-9_.]{1,60}$/),
  fc.constantFrom('', '.', '..', 'arena', 'stats', 'stats.arenas', 'opt.', 'thread.tcache', 'experimental', 'je_mallctl', 'MALLCTL_ARENAS_ALL'),
);

const NON_STRING_NAME = fc.oneof(
  fc.constantFrom<unknown>(undefined, null, true, 0, 4096, NaN, Symbol('name'), () => 'epoch', ['epoch'], { toString: () => 'epoch' }, new String('epoch')),
  fc.integer(),
  fc.bigInt(),
);

/** The controls a write can change (most of the tree is read-only), so that writes reach jemalloc too. */
const WRITABLE_NAME = fc.constantFrom(
  'epoch', 'background_thread', 'max_background_threads', 'thread.arena', 'thread.tcache.enabled', 'thread.tcache.flush', 'thread.peak.reset',
  'thread.idle', 'arena.0.decay', 'arena.4096.purge', 'arena.0.dss', 'arena.4096.dss', 'arena.0.dirty_decay_ms', 'arena.1.muzzy_decay_ms',
  'arena.0.oversize_threshold', 'arena.0.retain_grow_limit', 'arenas.dirty_decay_ms', 'arenas.muzzy_decay_ms', 'stats.mutexes.reset',
);

const NAME = fc.oneof(
  { weight: 2, arbitrary: WRITABLE_NAME.map((name) => ({ kind: 'real', name: name as unknown })) },
  { weight: 7, arbitrary: REAL_NAME.map((name) => ({ kind: 'real', name: name as unknown })) },
  { weight: 7, arbitrary: MUTATED_NAME.map((name) => ({ kind: 'mutated', name: name as unknown })) },
  { weight: 3, arbitrary: GARBAGE_NAME.map((name) => ({ kind: 'garbage', name: name as unknown })) },
  { weight: 1, arbitrary: NON_STRING_NAME.map((name) => ({ kind: 'non-string', name })) },
);

/** Values of every JS type, with the edges of the widths jemalloc uses. */
const VALUE = fc.oneof(
  // Values the writable controls take, so that writes also get through to jemalloc.
  { weight: 4, arbitrary: fc.constantFrom<unknown>(undefined, true, false, 0, 1, 2, 100, 1000, 10000, -1, 1n, 'secondary', 'disabled') },
  fc.constantFrom<unknown>(undefined, null, true, false, -0, NaN, Infinity, -Infinity, 0, 1, -1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e300),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 + 5 }),
  fc.nat({ max: 100_000 }),
  fc.double(),
  fc.bigInt({ min: -(2n ** 65n), max: 2n ** 65n }),
  fc.constantFrom<unknown>(0n, 1n, -1n, 2n ** 31n, 2n ** 32n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 63n)),
  fc.string({ maxLength: 20 }),
  fc.constantFrom<unknown>('primary', 'secondary', 'disabled', 'default', 'x\0y', 'x'.repeat(5000), ''),
  fc.constantFrom<unknown>(Symbol('value'), () => 1, [], [1, 2], {}, { valueOf: () => 1 }, new Date(0), Buffer.from('x'), new Uint8Array(8), new Number(1)),
  fc.object({ maxDepth: 1 }),
);

const TYPE = fc.oneof(
  fc.constantFrom<unknown>('bool', 'unsigned', 'uint32', 'int', 'size_t', 'uint64', 'ssize_t', 'int64', 'string'),
  fc.constantFrom<unknown>(undefined, null, 'toString', '__proto__', 'constructor', 'float', '', 8, {}),
);

const OPERATION = fc.record({ name: NAME, value: VALUE, withType: fc.boolean(), type: TYPE });

/** Codes a jemalloc.read/write may throw in a jemalloc process (DESIGN.md "Errors"). */
const FUZZ_CODES = new Set(['ENOCTL', 'EINVAL', 'EUNSUPPORTED']);
const FUZZ_RUNS = 12_000;
// Fixed so that a failure reproduces; FUZZ_SEED=<n> explores other sequences.
const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20240611);

interface FuzzReport {
  runs: number;
  calls: number;
  names: Record<string, number>;
  distinctNames: number;
  reads: Record<string, number>;
  writes: Record<string, number>;
  readTypes: Record<string, number>;
  failure: string | null;
  healthyAfter: boolean;
}

function tally(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

function fuzz(): FuzzReport {
  const report: FuzzReport = { runs: 0, calls: 0, names: {}, distinctNames: 0, reads: {}, writes: {}, readTypes: {}, failure: null, healthyAfter: false };
  const seen = new Set<string>();
  // The last calls, the newest about to be made, so that a crash names them (the parent reads this file).
  const trace = process.env.FUZZ_TRACE !== undefined ? openSync(process.env.FUZZ_TRACE, 'w') : undefined;
  const recent: string[] = [];
  const note = (text: string) => {
    if (trace === undefined) return;
    recent.push(`#${report.runs} ${text}`);
    if (recent.length > Number(process.env.FUZZ_TRACE_CALLS ?? 12)) recent.shift();
    const bytes = Buffer.from(recent.join('\n'));
    writeSync(trace, bytes, 0, bytes.length, 0);
    ftruncateSync(trace, bytes.length);
  };
  const attempt = (kind: 'read' | 'write', call: () => unknown, into: Record<string, number>): boolean => {
    report.calls++;
    try {
      const value = call();
      if (kind === 'write' && value !== undefined) return false;
      if (kind === 'read' && !['boolean', 'number', 'bigint', 'string'].includes(typeof value)) return false;
      if (kind === 'read') tally(report.readTypes, typeof value);
      tally(into, 'ok');
      return true;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (!(error instanceof AllocscopeError) || code === undefined || !FUZZ_CODES.has(code)) return false;
      tally(into, code);
      return true;
    }
  };
  try {
    fc.assert(
      fc.property(OPERATION, ({ name: { kind, name }, value, withType, type }) => {
        report.runs++;
        tally(report.names, kind);
        seen.add(typeof name === 'string' ? name : `<${typeof name}>`);
        note(`read ${describe(name)}${withType ? ` as ${describe(type)}` : ''}`);
        const readOk = attempt('read', () => (withType ? read(name, type) : read(name)), report.reads);
        note(`write ${describe(name)} = ${describe(value)} (${typeof value})`);
        const writeOk = attempt('write', () => write(name, value), report.writes);
        return readOk && writeOk;
      }),
      { numRuns: FUZZ_RUNS, seed: FUZZ_SEED, endOnFailure: true },
    );
  } catch (error) {
    report.failure = (error as Error).message.slice(0, 2000);
  }
  report.distinctNames = seen.size;
  if (trace !== undefined) closeSync(trace);
  // jemalloc still serves malloc and answers after all of that.
  const summary = jemalloc.summary();
  const handle = heapFixture.retain(1000, 1000);
  heapFixture.release(handle);
  report.healthyAfter = summary.allocatedBytes > 0 && typeof jemalloc.read('version') === 'string';
  return report;
}

const scenarios = {
  async reads() {
    // Node frees start-up memory from other threads for a while: let it settle, and measure a
    // few times, since stats.allocated is the whole process.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const attempts = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      write('epoch', 1);
      const before = read('stats.allocated') as number;
      const tcacheBefore = read('stats.arenas.4096.tcache_bytes') as number;
      // thread.allocated is this thread's own counter, live (no epoch), in usable bytes.
      const threadBefore = read('thread.allocated') as number;
      const handle = heapFixture.retain(BLOCKS, 1000);
      const threadAfter = read('thread.allocated') as number;
      // stats.* are served from the last epoch's snapshot until the epoch is advanced.
      const stale = read('stats.allocated') as number;
      const epochBefore = read('epoch') as number;
      write('epoch', 1);
      const epochAfter = read('epoch') as number;
      const fresh = read('stats.allocated') as number;
      const tcacheFresh = read('stats.arenas.4096.tcache_bytes') as number;
      heapFixture.release(handle);
      attempts.push({ before, stale, fresh, tcacheBefore, tcacheFresh, threadBefore, threadAfter, epochBefore, epochAfter });
    }
    return {
      attempts,
      usable: heapFixture.usableSize(1000),
      values: {
        'opt.narenas': outcome(() => read('opt.narenas')),
        'opt.retain': outcome(() => read('opt.retain')),
        version: outcome(() => read('version')),
        'arenas.dirty_decay_ms': outcome(() => read('arenas.dirty_decay_ms')),
        'opt.stats_interval': outcome(() => read('opt.stats_interval')),
        'opt.zero_realloc': outcome(() => read('opt.zero_realloc')),
        'stats.arenas.0.dss': outcome(() => read('stats.arenas.0.dss')),
        'stats.arenas.4096.dss': outcome(() => read('stats.arenas.4096.dss')),
        'arena.0.retain_grow_limit': outcome(() => read('arena.0.retain_grow_limit')),
        'arenas.page': outcome(() => read('arenas.page')),
        'config.stats': outcome(() => read('config.stats')),
        'thread.tcache.enabled': outcome(() => read('thread.tcache.enabled')),
      },
      typed: {
        narenasUnsigned: outcome(() => read('opt.narenas', 'unsigned')),
        narenasUint32: outcome(() => read('opt.narenas', 'uint32')),
        allocatedSizeT: outcome(() => read('stats.allocated', 'size_t')),
        retainBool: outcome(() => read('opt.retain', 'bool')),
        versionString: outcome(() => read('version', 'string')),
        statsIntervalInt64: outcome(() => read('opt.stats_interval', 'int64')),
        // The same 8 bytes read as unsigned: the type, not the table, decides.
        statsIntervalUint64: outcome(() => read('opt.stats_interval', 'uint64')),
      },
    };
  },

  writes() {
    const old = read('arenas.dirty_decay_ms');
    write('arenas.dirty_decay_ms', 5000);
    const set5000 = read('arenas.dirty_decay_ms');
    write('arenas.dirty_decay_ms', -1);
    const setMinus1 = read('arenas.dirty_decay_ms');
    write('arenas.dirty_decay_ms', 1234n);
    const setBigint = read('arenas.dirty_decay_ms');
    write('arenas.dirty_decay_ms', old);
    const restored = read('arenas.dirty_decay_ms');

    write('arena.0.muzzy_decay_ms', 250);
    const arenaMuzzy = read('arena.0.muzzy_decay_ms');

    write('thread.tcache.enabled', false);
    const tcacheOff = read('thread.tcache.enabled');
    write('thread.tcache.enabled', true);
    const tcacheOn = read('thread.tcache.enabled');

    write('background_thread', true);
    const backgroundOn = read('background_thread');
    write('background_thread', false);
    const backgroundOff = read('background_thread');

    const epoch0 = read('epoch') as number;
    write('epoch', 1);
    const epoch1 = read('epoch') as number;
    write('epoch', 0); // any written value refreshes in 5.3 (ctl.c epoch_ctl: `if (newp != NULL)`)
    const epoch2 = read('epoch') as number;

    const threadArena = read('thread.arena');
    write('thread.arena', threadArena);
    const threadArenaAgain = read('thread.arena');

    // Fill this thread's tcache with freed small objects, then flush it.
    heapFixture.release(heapFixture.retain(2000, 64));
    write('epoch', 1);
    const tcacheBefore = read('stats.arenas.4096.tcache_bytes') as number;
    const flushed = outcome(() => write('thread.tcache.flush'));
    write('epoch', 1);
    const tcacheAfter = read('stats.arenas.4096.tcache_bytes') as number;

    return {
      old,
      set5000,
      setMinus1,
      setBigint,
      restored,
      arenaMuzzy,
      tcacheOff,
      tcacheOn,
      backgroundOn,
      backgroundOff,
      epoch0,
      epoch1,
      epoch2,
      threadArena,
      threadArenaAgain,
      tcacheBefore,
      tcacheAfter,
      flushed,
      purgeAll: outcome(() => write(`arena.${ARENAS_ALL}.purge`)),
      decay0: outcome(() => write('arena.0.decay')),
      peakReset: outcome(() => write('thread.peak.reset')),
    };
  },

  errors() {
    return Object.fromEntries(BAD_INPUT.map(([label, call]) => [label, outcome(call)]));
  },

  agreement() {
    const json = jemalloc.statsJson();
    const unchanged = jemalloc.summary({ advanceEpoch: false });
    const epochRead = read('epoch');
    const advanced = jemalloc.summary();
    // A snapshot advances the epoch and maps the same figures summary() then reads unchanged.
    const snap = snapshot();
    const sameEpoch = jemalloc.summary({ advanceEpoch: false });
    return { json: json.jemalloc, unchanged, epochRead, advanced, snap, sameEpoch, settings: jemalloc.settings() };
  },

  bins() {
    const fragmentedBefore = jemalloc.bins();
    const allocatedBefore = jemalloc.summary({ advanceEpoch: false }).allocatedBytes;
    // bins() advanced the epoch: the merged small/large figures below are of that same epoch.
    const small = read('stats.arenas.4096.small.allocated');
    const large = read('stats.arenas.4096.large.allocated');
    const allocated = read('stats.allocated');
    const nbins = read('arenas.nbins');
    const layout = fragmentedBefore.map((_, j) => ({
      size: read(`arenas.bin.${j}.size`),
      nregs: read(`arenas.bin.${j}.nregs`),
      slabSize: read(`arenas.bin.${j}.slab_size`),
    }));
    // 200,000 blocks of 16..512 B, every other one freed: free regions inside held slabs.
    const handle = heapFixture.fragment(200_000, 16, 512, 2, 11);
    const fragmented = jemalloc.bins();
    const allocatedFragmented = jemalloc.summary({ advanceEpoch: false }).allocatedBytes;
    const full = snapshot({ detail: 'full' });
    heapFixture.release(handle);
    return {
      bins: fragmentedBefore,
      allocatedBefore,
      small,
      large,
      allocated,
      nbins,
      layout,
      fragmented,
      allocatedFragmented,
      fullSmallBinFrag: full.ratios.smallBinFrag,
      fullAllocated: full.allocatorBytes.allocated,
      fullCost: full.cost.class,
    };
  },

  settings() {
    return { settings: jemalloc.settings(), narenas: jemalloc.summary().narenas };
  },

  purge() {
    // 1000 x 64 KiB (large extents, beyond the tcache): freed, they stay as dirty pages for
    // opt.dirty_decay_ms (10 s) unless purged.
    const handle = heapFixture.retain(1000, 65536);
    heapFixture.release(handle);
    const before = jemalloc.summary();
    const result = jemalloc.purge();
    const after = jemalloc.summary();
    const viaRelease = jemallocRelease();
    return { before, result, after, viaRelease };
  },

  fuzz,

  /**
   * jemalloc failures that a healthy process does not produce (EAGAIN, ENOMEM, a missing
   * malloc_stats_print, a failed summary), simulated at the binding: each must still become an
   * AllocscopeError with the right code.
   */
  stubbed() {
    const binding = native() as { -readonly [K in keyof NativeBinding]: NativeBinding[K] };
    const saved = { ...binding };
    const restore = () => Object.assign(binding, saved);
    const out: Record<string, Outcome> = {};
    for (const [label, errno] of [['ENOENT', 2], ['EPERM', 1], ['EFAULT', 14], ['EAGAIN', 11], ['ENOMEM', 12], ['EINVAL', 22], ['EIO', 5]] as const) {
      binding.jemallocReadAny = () => ({ errno });
      binding.jemallocReadString = () => ({ errno });
      out[`read ${label}`] = outcome(() => read('stats.allocated'));
      out[`read string ${label}`] = outcome(() => read('version'));
      restore();
      binding.jemallocWrite = () => errno;
      out[`write ${label}`] = outcome(() => write('arenas.dirty_decay_ms', 5));
      out[`write boolean ${label}`] = outcome(() => write('background_thread', true));
      out[`write string ${label}`] = outcome(() => write('arena.0.dss', 'primary'));
      out[`write void ${label}`] = outcome(() => write('arena.0.purge'));
      restore();
    }
    // A write-only numeric control: 8 bytes first, then 4 when jemalloc says the width is wrong.
    const sizes: number[] = [];
    binding.jemallocReadAny = () => ({ errno: 1 });
    binding.jemallocWrite = (_name, _kind, _value, size) => (sizes.push(size as number), size === 8 ? 22 : 0);
    out['write-only 4-byte control'] = outcome(() => write('x.y', 7));
    out['write-only control beyond 32 bits'] = outcome(() => write('x.y', 2 ** 33));
    out['write-only bigint'] = outcome(() => write('x.y', 7n));
    const triedSizes = [...sizes];
    restore();

    binding.jemallocStatsPrint = () => null;
    out['statsJson without malloc_stats_print'] = outcome(() => jemalloc.statsJson());
    restore();
    const statusAt = slotNames().indexOf('allocatorStatus');
    binding.sampleInto = (slots) => {
      slots.fill(NaN);
      slots[statusAt] = 2;
    };
    out['summary with ENOENT'] = outcome(() => jemalloc.summary());
    binding.sampleInto = (slots) => slots.fill(NaN);
    out['summary without a status'] = outcome(() => jemalloc.summary());
    restore();
    binding.jemallocBins = () => ({ errno: 2 });
    out['bins with ENOENT'] = outcome(() => jemalloc.bins());
    binding.jemallocBins = () => ({ errno: 0 });
    out['bins without a list'] = outcome(() => jemalloc.bins());
    binding.jemallocBins = () => ({ errno: 0, bins: [{ size: 8, nregs: 512, slab_size: 4096, curregs: 0, curslabs: 0, nonfull_slabs: 0 }] });
    out['a bin without slabs'] = outcome(() => jemalloc.bins());
    restore();
    binding.jemallocPurge = () => 11;
    out['purge with EAGAIN'] = outcome(() => jemalloc.purge());
    restore();
    binding.jemallocReadAny = (name) => (name === 'opt.oversize_threshold' ? { errno: 2 } : saved.jemallocReadAny(name));
    out['settings without opt.oversize_threshold'] = outcome(() => Object.keys(jemalloc.settings()).sort());
    binding.jemallocReadAny = (name) => (name === 'opt.oversize_threshold' ? { errno: 22 } : saved.jemallocReadAny(name));
    out['settings with an error'] = outcome(() => jemalloc.settings());
    restore();
    return { out, triedSizes };
  },
};

/** Children start together at load (independent processes); each test awaits its own. */
const child = childOnce(__filename);

if (scenarioName() !== undefined) {
  void runScenario(scenarios);
} else {
  const skip = skipUnlessInstalled('jemalloc');
  const fuzzDir = mkdtempSync(join(tmpdir(), 'allocscope-fuzz-'));
  const tracePath = join(fuzzDir, 'trace');
  t.teardown(() => rmSync(fuzzDir, { recursive: true, force: true }));
  if (skip === false) {
    for (const scenario of ['reads', 'writes', 'errors', 'agreement', 'bins', 'purge', 'stubbed']) void child(scenario, 'jemalloc');
    void child('settings', 'jemalloc', SETTINGS_CONF);
    void child('fuzz', 'jemalloc', { FUZZ_TRACE: tracePath });
  }

  t.test('read: known names with their types, and the epoch', { skip }, async (t) => {
    const { value: r } = await child<Awaited<ReturnType<typeof scenarios.reads>>>('reads', 'jemalloc');
    const v = r.values;
    t.equal(v['opt.narenas'].type, 'number');
    t.ok((v['opt.narenas'].value as number) >= 1, `opt.narenas ${v['opt.narenas'].value}`);
    t.same(v['opt.retain'], { type: 'boolean', value: true }, 'opt.retain: true on 64-bit Linux');
    t.equal(v.version.type, 'string');
    t.match(v.version.value, /^5\.\d+\.\d+-/);
    t.same(v['arenas.dirty_decay_ms'], { type: 'number', value: 10000 }, 'the 5.3 default');
    t.same(v['opt.stats_interval'], { type: 'number', value: -1 }, 'signed: -1 is "disabled", not 2^64-1');
    t.equal(v['opt.zero_realloc'].type, 'string', 'a const char * control is read as a string');
    t.match(v['opt.zero_realloc'].value, /^(free|alloc|abort)$/);
    t.same(v['stats.arenas.0.dss'], { type: 'string', value: 'secondary' });
    t.same(v['stats.arenas.4096.dss'], { type: 'string', value: 'N/A' }, 'merged arenas have no dss mode');
    t.equal(v['arena.0.retain_grow_limit'].type, 'bigint', 'size_t beyond 2^53 is a bigint');
    t.same(v['arenas.page'], { type: 'number', value: 4096 });
    t.same(v['config.stats'], { type: 'boolean', value: true });
    t.same(v['thread.tcache.enabled'], { type: 'boolean', value: true });

    t.same(r.typed.narenasUnsigned, v['opt.narenas']);
    t.same(r.typed.narenasUint32, v['opt.narenas']);
    t.equal(r.typed.allocatedSizeT.type, 'number');
    t.same(r.typed.retainBool, { type: 'boolean', value: true });
    t.same(r.typed.versionString, v.version);
    t.same(r.typed.statsIntervalInt64, { type: 'number', value: -1 });
    t.same(r.typed.statsIntervalUint64, { type: 'bigint', value: `${2n ** 64n - 1n}n` });

    const expected = BLOCKS * r.usable;
    // Besides the blocks the fixture keeps a vector of pointers that grows by doubling.
    const vector = 4 * 8 * BLOCKS;
    for (const a of r.attempts) {
      t.equal(a.stale, a.before, 'without an epoch, stats.allocated is the last epoch\'s figure');
      t.equal(a.epochAfter, a.epochBefore + 1, 'writing epoch advances it by one');
      const threadGrew = a.threadAfter - a.threadBefore;
      t.ok(threadGrew >= expected && threadGrew <= expected + vector, `thread.allocated grew ${threadGrew}: ${BLOCKS} x ${r.usable} + the vector`);
    }
    // Objects already in a tcache count as allocated, so app-live is allocated - tcache_bytes
    // (metrics.md §2.3). Other threads may free meanwhile: one attempt of three must be clean.
    const grown = r.attempts.map((a) => a.fresh - a.tcacheFresh - (a.before - a.tcacheBefore));
    t.ok(
      grown.some((g) => g >= expected * 0.95 && g <= expected + vector + 512 * 1024),
      `live bytes (stats.allocated - tcache_bytes, after an epoch) grew by ${grown.join(', ')}; expected ~${expected}`,
    );
  });

  t.test('write: round trips, void controls and the epoch', { skip }, async (t) => {
    const { value: w } = await child<Record<string, unknown> & { tcacheBefore: number; tcacheAfter: number; epoch0: number; epoch1: number; epoch2: number }>('writes', 'jemalloc');
    t.equal(w.set5000, 5000);
    t.equal(w.setMinus1, -1, 'ssize_t -1 (never purge) round-trips as -1');
    t.equal(w.setBigint, 1234);
    t.equal(w.restored, w.old);
    t.equal(w.arenaMuzzy, 250);
    t.equal(w.tcacheOff, false);
    t.equal(w.tcacheOn, true);
    t.equal(w.backgroundOn, true);
    t.equal(w.backgroundOff, false);
    t.equal(w.epoch1, w.epoch0 + 1);
    t.equal(w.epoch2, w.epoch1 + 1, 'writing epoch 0 refreshes too');
    t.equal(w.threadArenaAgain, w.threadArena);
    t.same(w.flushed, { type: 'undefined' });
    t.ok(w.tcacheAfter < w.tcacheBefore, `thread.tcache.flush emptied this thread's cache: ${w.tcacheBefore} -> ${w.tcacheAfter}`);
    t.same(w.purgeAll, { type: 'undefined' });
    t.same(w.decay0, { type: 'undefined' });
    t.same(w.peakReset, { type: 'undefined' });
  });

  t.test('bad input: each an AllocscopeError with its code', { skip }, async (t) => {
    const { value: codes } = await child<Record<string, Outcome>>('errors', 'jemalloc');
    for (const [label, , code] of BAD_INPUT) {
      t.same(codes[label], { code, allocscopeError: true }, label);
    }
  });

  t.test('summary, statsJson, settings and the Snapshot mapping agree on one epoch', { skip }, async (t) => {
    const { value: a } = await child<{
      json: { version: string; opt: Record<string, unknown>; arenas: { page: number; narenas: number }; stats: Record<string, number>; 'stats.arenas': { merged: Record<string, number> } };
      unchanged: Record<string, number>;
      epochRead: number;
      advanced: Record<string, number>;
      snap: { allocatorBytes: Record<string, number | null>; raw: { jemalloc: Record<string, number> }; allocator: { name: string } };
      sameEpoch: Record<string, number>;
      settings: Record<string, unknown>;
    }>('agreement', 'jemalloc');
    const { json, unchanged: u } = a;
    const merged = json['stats.arenas'].merged;
    // malloc_stats_print advanced the epoch itself; summary without advancing reads those figures.
    t.equal(u.allocatedBytes, json.stats.allocated, 'stats.allocated');
    t.equal(u.activeBytes, json.stats.active, 'stats.active');
    t.equal(u.residentBytes, json.stats.resident, 'stats.resident');
    t.equal(u.mappedBytes, json.stats.mapped, 'stats.mapped');
    t.equal(u.retainedBytes, json.stats.retained, 'stats.retained');
    t.equal(u.metadataBytes, json.stats.metadata, 'stats.metadata');
    t.equal(u.pageBytes, json.arenas.page, 'arenas.page');
    t.equal(u.narenas, json.arenas.narenas, 'arenas.narenas');
    t.equal(u.dirtyBytes, merged.pdirty * json.arenas.page, 'pdirty x page');
    t.equal(u.muzzyBytes, merged.pmuzzy * json.arenas.page, 'pmuzzy x page');
    t.equal(u.tcacheBytes, merged.tcache_bytes, 'tcache_bytes');
    t.equal(u.epoch, a.epochRead);
    t.equal(a.advanced.epoch, u.epoch + 1, 'summary() advances the epoch by one');
    t.ok(u.allocatedBytes <= u.activeBytes && u.activeBytes <= u.residentBytes, 'allocated <= active <= resident');

    // The Snapshot's jemalloc mapping (metrics.md §8), checked against summary() on the same epoch.
    const s = a.sameEpoch;
    const bytes = a.snap.allocatorBytes;
    t.equal(a.snap.allocator.name, 'jemalloc');
    t.same(bytes, {
      allocated: s.allocatedBytes,
      active: s.activeBytes,
      resident: s.residentBytes,
      mapped: s.mappedBytes,
      retained: s.retainedBytes,
      dirty: s.dirtyBytes,
      muzzy: s.muzzyBytes,
      metadata: s.metadataBytes,
      threadCache: s.tcacheBytes,
      heapFree: null,
      releasable: null,
    });
    t.equal(a.snap.raw.jemalloc.epoch, s.epoch);

    t.equal(a.settings.version, json.version);
    for (const key of ['narenas', 'dirty_decay_ms', 'muzzy_decay_ms', 'retain', 'background_thread', 'thp', 'metadata_thp', 'tcache', 'percpu_arena', 'oversize_threshold', 'cache_oblivious']) {
      t.equal(a.settings[`opt.${key}`], json.opt[key], `opt.${key}`);
    }
  });

  t.test('bins: layout, small allocated, and small-bin fragmentation', { skip }, async (t) => {
    const { value: b } = await child<{
      bins: JemallocBin[];
      allocatedBefore: number;
      small: number;
      large: number;
      allocated: number;
      nbins: number;
      layout: Array<{ size: number; nregs: number; slabSize: number }>;
      fragmented: JemallocBin[];
      allocatedFragmented: number;
      fullSmallBinFrag: { ratio: number; bytes: number } | null;
      fullAllocated: number;
      fullCost: string;
    }>('bins', 'jemalloc');
    t.equal(b.bins.length, b.nbins, 'one entry per small bin (arenas.nbins)');
    b.bins.forEach((bin, j) => {
      const layout = b.layout[j];
      if (bin.sizeBytes !== layout.size || bin.regionsPerSlab !== layout.nregs || bin.slabBytes !== layout.slabSize) {
        t.fail(`bin ${j} layout ${JSON.stringify(bin)} != arenas.bin.${j} ${JSON.stringify(layout)}`);
      }
      if (j > 0 && bin.sizeBytes <= b.bins[j - 1].sizeBytes) t.fail(`bin sizes increase at ${j}`);
      if (bin.curregs > bin.regionsPerSlab * bin.curslabs || bin.nonfullSlabs > bin.curslabs) t.fail(`bin ${j} counts are consistent`);
      const capacity = bin.regionsPerSlab * bin.curslabs;
      if (bin.utilization !== (capacity > 0 ? bin.curregs / capacity : null)) t.fail(`bin ${j} utilization`);
      if (bin.freeRegionBytes !== (capacity - bin.curregs) * bin.sizeBytes) t.fail(`bin ${j} freeRegionBytes`);
    });
    t.pass('every bin matches arenas.bin.<j>.*, sizes increase, counts and derived fields are consistent');
    const sumSmall = b.bins.reduce((sum, bin) => sum + bin.curregs * bin.sizeBytes, 0);
    t.equal(sumSmall, b.small, 'sum of curregs x size == stats.arenas.4096.small.allocated (same epoch)');
    t.equal(b.small + b.large, b.allocated, 'small + large == stats.allocated');
    t.equal(b.allocated, b.allocatedBefore);

    const before = smallBinFragOf(b.bins, b.allocatedBefore) as { ratio: number; bytes: number };
    const after = smallBinFragOf(b.fragmented, b.allocatedFragmented) as { ratio: number; bytes: number };
    t.equal(before.ratio, 1 + before.bytes / b.allocatedBefore);
    t.ok(after.bytes - before.bytes > 8 * 1048576, `freeing every other of 200,000 small blocks left ${after.bytes - before.bytes} B of free regions in slabs`);
    t.ok(after.ratio > before.ratio);
    t.ok(b.fullSmallBinFrag !== null && b.fullSmallBinFrag.bytes > 8 * 1048576, 'snapshot({detail:"full"}) carries smallBinFrag');
    t.equal(b.fullSmallBinFrag?.ratio, 1 + (b.fullSmallBinFrag?.bytes ?? 0) / b.fullAllocated);
    t.equal(b.fullCost, 'expensive', 'the per-bin walk makes a full jemalloc snapshot expensive');
  });

  t.test('settings are read from jemalloc, not assumed (MALLOC_CONF)', { skip }, async (t) => {
    const { value } = await child<{ settings: Record<string, unknown>; narenas: number }>('settings', 'jemalloc', SETTINGS_CONF);
    const s = value.settings;
    t.same(Object.keys(s).sort(), [
      'config.stats', 'opt.background_thread', 'opt.cache_oblivious', 'opt.dirty_decay_ms', 'opt.metadata_thp', 'opt.muzzy_decay_ms',
      'opt.narenas', 'opt.oversize_threshold', 'opt.percpu_arena', 'opt.retain', 'opt.tcache', 'opt.thp', 'version',
    ]);
    t.equal(s['opt.narenas'], 3);
    t.equal(s['opt.dirty_decay_ms'], 1234);
    t.equal(s['opt.muzzy_decay_ms'], 567);
    t.equal(s['opt.tcache'], false);
    t.equal(s['opt.retain'], true);
    t.equal(typeof s['opt.thp'], 'string');
    t.ok(value.narenas >= 3, `arenas.narenas ${value.narenas} >= opt.narenas`);
  });

  t.test('purge: returns the dirty pages and measures it', { skip }, async (t) => {
    const { value: p } = await child<{
      before: { dirtyBytes: number };
      after: { dirtyBytes: number; muzzyBytes: number };
      result: { allocator: string; action: string; rssBeforeBytes: number; rssAfterBytes: number; returnedBytes: number; durationNs: number; note: string };
      viaRelease: { allocator: string; action: string };
    }>('purge', 'jemalloc');
    t.ok(p.before.dirtyBytes >= 32 * 1048576, `64 MiB freed left ${p.before.dirtyBytes} B dirty`);
    t.ok(p.after.dirtyBytes < p.before.dirtyBytes / 8, `after purge ${p.after.dirtyBytes} B dirty`);
    t.equal(p.result.allocator, 'jemalloc');
    t.equal(p.result.action, 'mallctl arena.4096.purge');
    t.equal(p.result.returnedBytes, p.result.rssBeforeBytes - p.result.rssAfterBytes, 'returnedBytes = before - after');
    t.ok(p.result.returnedBytes >= 32 * 1048576, `RSS dropped by ${p.result.returnedBytes}`);
    t.ok(p.result.durationNs > 0);
    t.match(p.result.note, /returned \d+\.\d MiB to the kernel/);
    t.same([p.viaRelease.allocator, p.viaRelease.action], ['jemalloc', 'mallctl arena.4096.purge'], 'purge() of the allocator table is jemalloc.purge');
  });

  t.test(`fuzz: ${FUZZ_RUNS} generated names and values through read and write`, { skip }, async (t) => {
    let result;
    try {
      result = await child<FuzzReport>('fuzz', 'jemalloc', { FUZZ_TRACE: tracePath });
    } catch (error) {
      let last = '(no trace)';
      try {
        last = readFileSync(tracePath, 'utf8');
      } catch {
        // the child died before writing one
      }
      t.fail(`the child did not survive the fuzz; last calls, newest last:\n${last}\n${(error as Error).message}`);
      return;
    }
    const r = result.value;
    t.equal(result.code, 0, 'the child exited normally');
    t.equal(result.signal, null);
    t.equal(r.failure, null, 'every call returned or threw an AllocscopeError with ENOCTL, EINVAL or EUNSUPPORTED');
    t.equal(r.runs, FUZZ_RUNS);
    t.equal(r.calls, 2 * FUZZ_RUNS);
    t.ok(r.distinctNames >= 6000, `${r.distinctNames} distinct names`);
    t.ok((r.names.real ?? 0) > 3000 && (r.names.mutated ?? 0) > 3000 && (r.names.garbage ?? 0) > 1000 && (r.names['non-string'] ?? 0) > 200, 'names mix real, mutated, garbage and non-strings');
    t.ok((r.reads.ok ?? 0) > 1000, 'many reads succeeded: the fuzz reaches jemalloc, not only the argument checks');
    t.ok((r.writes.ok ?? 0) > 50, 'some writes succeeded');
    for (const code of ['ENOCTL', 'EINVAL', 'EUNSUPPORTED']) t.ok((r.reads[code] ?? 0) + (r.writes[code] ?? 0) > 0, `${code} seen`);
    t.ok(['boolean', 'number', 'bigint', 'string'].every((type) => (r.readTypes[type] ?? 0) > 0), 'reads returned every value kind');
    t.equal(r.healthyAfter, true, 'jemalloc still allocates and answers afterwards');
    t.comment(`fuzz seed ${FUZZ_SEED}: ${r.runs} runs, ${r.calls} calls, ${r.distinctNames} distinct names ${JSON.stringify(r.names)}`);
    t.comment(`reads ${JSON.stringify(r.reads)} (types ${JSON.stringify(r.readTypes)}); writes ${JSON.stringify(r.writes)}`);
  });

  t.test('jemalloc failures become AllocscopeErrors with codes (simulated at the binding)', { skip }, async (t) => {
    const { value } = await child<{ out: Record<string, Outcome>; triedSizes: number[] }>('stubbed', 'jemalloc');
    const { out } = value;
    const err = (code: string) => ({ code, allocscopeError: true });
    for (const op of ['read', 'read string', 'write', 'write boolean', 'write string', 'write void']) {
      t.same(out[`${op} ENOENT`], err('ENOCTL'), `${op}: ENOENT -> ENOCTL`);
      for (const errno of ['EPERM', 'EFAULT', 'EAGAIN', 'ENOMEM', 'EINVAL', 'EIO']) t.same(out[`${op} ${errno}`], err('EINVAL'), `${op}: ${errno} -> EINVAL`);
    }
    t.same(out['write-only 4-byte control'], { type: 'undefined' });
    t.same(out['write-only control beyond 32 bits'], err('EINVAL'));
    t.same(out['write-only bigint'], { type: 'undefined' });
    t.same(value.triedSizes, [8, 4, 8, 8, 4], 'a write-only control is tried at 8 bytes, then at 4 if the value fits');
    t.same(out['statsJson without malloc_stats_print'], err('EUNSUPPORTED'));
    t.same(out['summary with ENOENT'], err('ENOCTL'));
    t.same(out['summary without a status'], err('EINVAL'));
    t.same(out['bins with ENOENT'], err('ENOCTL'));
    t.same(out['bins without a list'], { type: 'object', value: [] });
    t.same(out['a bin without slabs'].value, [
      { sizeBytes: 8, regionsPerSlab: 512, slabBytes: 4096, curregs: 0, curslabs: 0, nonfullSlabs: 0, utilization: null, freeRegionBytes: 0 },
    ], 'no slab held: utilization unknown (null), no free regions');
    t.same(out['purge with EAGAIN'], err('EINVAL'));
    t.equal(out['settings without opt.oversize_threshold'].type, 'object');
    t.notOk((out['settings without opt.oversize_threshold'].value as string[]).includes('opt.oversize_threshold'), 'a setting this jemalloc lacks is absent');
    t.equal((out['settings without opt.oversize_threshold'].value as string[]).length, 12);
    t.same(out['settings with an error'], err('EINVAL'), 'other errors are not swallowed');
  });

  t.test('every jemalloc call in a glibc process throws ENOALLOCATOR', async (t) => {
    const calls: Array<[string, () => unknown]> = [
      ['read', () => jemalloc.read('stats.allocated')],
      ['read typed', () => jemalloc.read('opt.narenas', 'unsigned')],
      ['read string', () => jemalloc.read('version')],
      ['write', () => jemalloc.write('epoch', 1)],
      ['write void', () => jemalloc.write('arena.4096.purge')],
      ['summary', () => jemalloc.summary()],
      ['bins', () => jemalloc.bins()],
      ['statsJson', () => jemalloc.statsJson()],
      ['purge', () => jemalloc.purge()],
      ['settings', () => jemalloc.settings()],
    ];
    for (const [label, call] of calls) t.same(outcome(call), { code: 'ENOALLOCATOR', allocscopeError: true }, label);
    // Argument checks come first: bad input is EINVAL / EUNSUPPORTED whatever the allocator.
    t.same(outcome(() => jemalloc.read('Bad Name')), { code: 'EINVAL', allocscopeError: true });
    t.same(outcome(() => jemalloc.write('arena.0.reset')), { code: 'EUNSUPPORTED', allocscopeError: true });
    t.same(outcome(() => jemalloc.statsJson('Z')), { code: 'EINVAL', allocscopeError: true });
  });

  t.test('mapping: jemalloc figures -> Snapshot fields', async (t) => {
    const raw = {
      'jemalloc.stats.allocated': 1000,
      'jemalloc.stats.active': 4096,
      'jemalloc.stats.resident': 8192,
      'jemalloc.stats.mapped': 16384,
      'jemalloc.stats.retained': 32768,
      'jemalloc.stats.metadata': 512,
      'jemalloc.stats.arenas.4096.pdirty': 3,
      'jemalloc.stats.arenas.4096.pmuzzy': 5,
      'jemalloc.stats.arenas.4096.tcache_bytes': 96,
      'jemalloc.arenas.page': 4096,
    };
    t.same(jemallocMapping.bytesFrom(readerForRecord(raw)), {
      allocated: 1000,
      active: 4096,
      resident: 8192,
      mapped: 16384,
      retained: 32768,
      dirty: 3 * 4096,
      muzzy: 5 * 4096,
      metadata: 512,
      threadCache: 96,
      heapFree: null,
      releasable: null,
    });
    const { 'jemalloc.arenas.page': _page, ...withoutPage } = raw;
    const noPage = jemallocMapping.bytesFrom(readerForRecord(withoutPage));
    t.same([noPage?.dirty, noPage?.muzzy, noPage?.allocated], [null, null, 1000], 'pages without a page size are unknown, not guessed');
    const { 'jemalloc.stats.allocated': _allocated, ...withoutAllocated } = raw;
    t.equal(jemallocMapping.bytesFrom(readerForRecord(withoutAllocated)), null, 'no allocated figure: no jemalloc totals');
    t.same(jemallocMapping.extraRatios(noPage as never, {} as never), {});
    t.same([jemallocMapping.name, jemallocMapping.rawKey, jemallocMapping.slotPrefix, jemallocMapping.costClass], ['jemalloc', 'jemalloc', 'jemalloc.', 'cheap']);
    t.equal(ARENAS_ALL, 4096);
  });

  t.test('smallBinFragOf: the Redis >= 7.4 definition', async (t) => {
    const bin = (size: number, freeRegions: number): JemallocBin => ({
      sizeBytes: size,
      regionsPerSlab: 8,
      slabBytes: 8 * size,
      curregs: 8 - freeRegions,
      curslabs: 1,
      nonfullSlabs: freeRegions > 0 ? 1 : 0,
      utilization: (8 - freeRegions) / 8,
      freeRegionBytes: freeRegions * size,
    });
    t.same(smallBinFragOf([bin(16, 2), bin(32, 0), bin(64, 1)], 1000), { ratio: 1 + 96 / 1000, bytes: 96 });
    t.same(smallBinFragOf([], 1000), { ratio: 1, bytes: 0 });
    t.equal(smallBinFragOf([bin(16, 2)], 0), null, 'nothing allocated: no ratio');
    t.equal(smallBinFragOf([bin(16, 2)], null), null);
  });
}
