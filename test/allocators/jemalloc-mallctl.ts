import t from 'tap';
import { constants } from 'node:os';
import {
  ERRNO,
  isSignedName,
  isStringName,
  isWellFormedName,
  MAX_NAME_LENGTH,
  refusedReadReason,
  refusedValueReason,
  refusedWriteReason,
} from '../../lib/allocators/jemalloc-mallctl';

t.test('well-formed names: dot-separated words and whole-number indices', async (t) => {
  for (const name of ['version', 'epoch', 'stats.allocated', 'stats.arenas.4096.bins.35.curregs', 'arena.0.dirty_decay_ms', 'opt.lg_prof_interval', '_x.0']) {
    t.equal(isWellFormedName(name), true, name);
  }
  t.equal(isWellFormedName(`stats.${'a'.repeat(MAX_NAME_LENGTH - 6)}`), true, 'exactly MAX_NAME_LENGTH characters');
  const malformed = [
    '',
    'Stats.allocated',
    'stats..allocated',
    '.stats',
    'stats.',
    'stats allocated',
    'stats.allocated\0',
    'stats-allocated',
    'stats.allocé',
    'x'.repeat(MAX_NAME_LENGTH + 1),
    // jemalloc reads an index with strtoumax and ignores what follows the digits: "0x" reaches
    // arena 0 while whole-name tables (strings, refused writes) would not see it.
    'arena.0x.dss',
    'arena.0a.reset',
    'stats.arenas.1e3.pactive',
  ];
  for (const name of malformed) t.equal(isWellFormedName(name), false, JSON.stringify(name));
});

t.test('string mallctls (jemalloc 5.3 const char * controls) are known, numbers are not', async (t) => {
  const strings = [
    'version',
    'config.malloc_conf',
    'opt.dss',
    'opt.thp',
    'opt.metadata_thp',
    'opt.percpu_arena',
    'opt.junk',
    'opt.prof_prefix',
    'opt.zero_realloc',
    'opt.prof_time_resolution',
    'opt.stats_print_opts',
    'arena.0.dss',
    'arena.4096.dss',
    'stats.arenas.4096.dss',
    'thread.prof.name',
    'prof.dump',
    'prof.prefix',
    'prof.log_start',
  ];
  for (const name of strings) t.equal(isStringName(name), true, name);
  for (const name of ['stats.allocated', 'opt.narenas', 'arena.0.dss.x', 'arenas.0.dss', 'opt.dss_x', 'xversion', 'stats.arenas.x.dss']) {
    t.equal(isStringName(name), false, name);
  }
});

t.test('signed mallctls (ssize_t, int64_t) are known', async (t) => {
  for (const name of [
    'opt.dirty_decay_ms',
    'arenas.muzzy_decay_ms',
    'arena.3.dirty_decay_ms',
    'stats.arenas.4096.dirty_decay_ms',
    'opt.lg_prof_interval',
    'opt.stats_interval',
    'opt.prof_recent_alloc_max',
    'opt.mutex_max_spin',
    'opt.lg_tcache_nslots_mul',
    'experimental.prof_recent.alloc_max',
  ]) {
    t.equal(isSignedName(name), true, name);
  }
  // size_t in 5.3 (ctl.c: CTL_RO_NL_GEN(opt_lg_extent_max_active_fit, ..., size_t)).
  for (const name of ['opt.lg_extent_max_active_fit', 'stats.allocated', 'opt.narenas', 'opt.hpa_hugify_delay_ms']) t.equal(isSignedName(name), false, name);
});

t.test('writes that take C pointers, free live memory or crash jemalloc are refused with a reason', async (t) => {
  for (const name of [
    'arena.0.extent_hooks',
    'arena.4096.extent_hooks',
    'experimental.hooks.install',
    'experimental.arenas_create_ext',
    'arenas.lookup',
    'tcache.flush',
    'tcache.destroy',
    'arena.0.reset',
    'arena.12.destroy',
    'arenas.create',
    'tcache.create',
  ]) {
    const reason = refusedWriteReason(name);
    t.type(reason, 'string', name);
    t.ok((reason ?? '').length > 10, `${name}: a sentence`);
  }
  for (const name of ['arena.0.purge', 'arena.4096.decay', 'epoch', 'thread.tcache.flush', 'arenas.dirty_decay_ms', 'background_thread', 'xarenas.create']) {
    t.equal(refusedWriteReason(name), null, name);
  }
  t.type(refusedReadReason('arenas.lookup'), 'string');
  for (const name of ['arenas.create', 'stats.allocated', 'arena.0.extent_hooks', 'version']) t.equal(refusedReadReason(name), null, name);
});

t.test('arena.<i> controls that jemalloc 5.3 indexes past its arena array at 4096/4097 are refused', async (t) => {
  // Handled by ctl.c for the pseudo-indices: purge, decay and dss at 4096 (all arenas),
  // initialized at both, and extent_hooks / retain_grow_limit, which check the index.
  for (const name of ['arena.4096.purge', 'arena.4096.decay', 'arena.4096.dss', 'arena.4096.initialized', 'arena.4097.initialized', 'arena.4097.retain_grow_limit', 'arena.4096.extent_hooks']) {
    t.equal(refusedReadReason(name), null, `${name} may be read`);
  }
  for (const name of ['arena.4096.dirty_decay_ms', 'arena.4096.muzzy_decay_ms', 'arena.4096.oversize_threshold', 'arena.4097.purge', 'arena.4097.decay', 'arena.4097.dss', 'arena.04097.dirty_decay_ms']) {
    t.type(refusedReadReason(name), 'string', `${name} read refused`);
    t.type(refusedWriteReason(name), 'string', `${name} write refused`);
  }
  // Ordinary indices, and indices jemalloc itself rejects as unknown (ENOENT), are left to it.
  for (const name of ['arena.0.dirty_decay_ms', 'arena.8.oversize_threshold', 'arena.4095.dirty_decay_ms', 'arena.4098.purge', 'arena.99999999999999999999.dss']) {
    t.equal(refusedReadReason(name), null, name);
    t.equal(refusedWriteReason(name), null, name);
  }
});

t.test('values jemalloc accepts but cannot live with are refused', async (t) => {
  // max_background_threads = 0 makes background_thread.c divide by zero (SIGFPE, found by the fuzz).
  t.type(refusedValueReason('max_background_threads', 0n), 'string');
  for (const value of [1n, 4n, 2n ** 63n]) t.equal(refusedValueReason('max_background_threads', value), null, `${value}`);
  t.equal(refusedValueReason('opt.max_background_threads', 0n), null);
  t.equal(refusedValueReason('arenas.dirty_decay_ms', 0n), null);
});

t.test('ERRNO values are the Linux ones', async (t) => {
  for (const [name, value] of Object.entries(ERRNO)) t.equal(value, constants.errno[name as keyof typeof constants.errno], name);
});
