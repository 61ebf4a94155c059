#define _GNU_SOURCE
#include "jemalloc_probe.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
typedef int (*nametomib_fn)(const char *, size_t *, size_t *);
typedef int (*bymib_fn)(const size_t *, size_t, void *, size_t *, void *, size_t);
typedef void (*stats_print_fn)(void (*)(void *, const char *), void *, const char *);

static struct {
  mallctl_fn mallctl;
  nametomib_fn nametomib;
  bymib_fn bymib;
  stats_print_fn stats_print;
  const char *prefix;
} je;

static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static void *prefixed_symbol(const char *prefix, const char *name) {
  char symbol[64];
  snprintf(symbol, sizeof(symbol), "%s%s", prefix, name);
  return dlsym(RTLD_DEFAULT, symbol);
}

static void bind_body(void) {
  /* Debian and most Linux builds are unprefixed; Redis links je_, Rust's tikv-jemalloc-sys
     _rjem_ (references/metrics.md §2.1). */
  static const char *const prefixes[] = {"", "je_", "_rjem_"};
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
    mallctl_fn ctl = (mallctl_fn)prefixed_symbol(prefixes[i], "mallctl");
    if (ctl == NULL) continue;
    je.mallctl = ctl;
    je.nametomib = (nametomib_fn)prefixed_symbol(prefixes[i], "mallctlnametomib");
    je.bymib = (bymib_fn)prefixed_symbol(prefixes[i], "mallctlbymib");
    je.stats_print = (stats_print_fn)prefixed_symbol(prefixes[i], "malloc_stats_print");
    je.prefix = prefixes[i];
    return;
  }
  je.prefix = "";
}

int asp_je_bind(void) {
  pthread_once(&bind_once, bind_body);
  return je.mallctl != NULL ? 0 : ENOSYS;
}

int asp_je_bind_prefixed(void) {
  return asp_je_bind() == 0 && je.prefix[0] != '\0' ? 0 : ENOSYS;
}

const char *asp_je_symbol_prefix(void) {
  asp_je_bind();
  return je.prefix;
}

int asp_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  if (asp_je_bind() != 0) return ENOSYS;
  return je.mallctl(name, oldp, oldlenp, newp, newlen);
}

void asp_je_version(char *out, size_t cap) {
  const char *version = NULL;
  size_t len = sizeof(version);
  if (asp_je_mallctl("version", &version, &len, NULL, 0) == 0 && version != NULL) {
    snprintf(out, cap, "%s", version);
  } else if (cap > 0) {
    out[0] = '\0';
  }
}

/* ---- summary through cached MIBs ---- */

#define MIB_MAX 8
typedef struct {
  const char *name;
  size_t mib[MIB_MAX];
  size_t len;
  int status; /* 0 resolved, else the errno of mallctlnametomib */
} cached_mib;

enum {
  MIB_EPOCH,
  MIB_ALLOCATED,
  MIB_ACTIVE,
  MIB_RESIDENT,
  MIB_MAPPED,
  MIB_RETAINED,
  MIB_METADATA,
  MIB_PDIRTY,
  MIB_PMUZZY,
  MIB_TCACHE_BYTES,
  MIB_PAGE,
  MIB_NARENAS,
  MIB_NBINS,
  MIB_BIN_SIZE,
  MIB_BIN_NREGS,
  MIB_BIN_SLAB_SIZE,
  MIB_BIN_CURREGS,
  MIB_BIN_CURSLABS,
  MIB_BIN_NONFULL,
  MIB_COUNT
};

/* The "4096" in these names is ASP_JE_ARENAS_ALL; the "0" in bin names is patched per bin. */
static cached_mib mibs[MIB_COUNT] = {
    [MIB_EPOCH] = {"epoch", {0}, 0, 0},
    [MIB_ALLOCATED] = {"stats.allocated", {0}, 0, 0},
    [MIB_ACTIVE] = {"stats.active", {0}, 0, 0},
    [MIB_RESIDENT] = {"stats.resident", {0}, 0, 0},
    [MIB_MAPPED] = {"stats.mapped", {0}, 0, 0},
    [MIB_RETAINED] = {"stats.retained", {0}, 0, 0},
    [MIB_METADATA] = {"stats.metadata", {0}, 0, 0},
    [MIB_PDIRTY] = {"stats.arenas.4096.pdirty", {0}, 0, 0},
    [MIB_PMUZZY] = {"stats.arenas.4096.pmuzzy", {0}, 0, 0},
    [MIB_TCACHE_BYTES] = {"stats.arenas.4096.tcache_bytes", {0}, 0, 0},
    [MIB_PAGE] = {"arenas.page", {0}, 0, 0},
    [MIB_NARENAS] = {"arenas.narenas", {0}, 0, 0},
    [MIB_NBINS] = {"arenas.nbins", {0}, 0, 0},
    [MIB_BIN_SIZE] = {"arenas.bin.0.size", {0}, 0, 0},
    [MIB_BIN_NREGS] = {"arenas.bin.0.nregs", {0}, 0, 0},
    [MIB_BIN_SLAB_SIZE] = {"arenas.bin.0.slab_size", {0}, 0, 0},
    [MIB_BIN_CURREGS] = {"stats.arenas.4096.bins.0.curregs", {0}, 0, 0},
    [MIB_BIN_CURSLABS] = {"stats.arenas.4096.bins.0.curslabs", {0}, 0, 0},
    [MIB_BIN_NONFULL] = {"stats.arenas.4096.bins.0.nonfull_slabs", {0}, 0, 0},
};
/* Position of the bin index in each bin MIB: arenas.bin.<j> and stats.arenas.<i>.bins.<j>. */
#define ARENAS_BIN_INDEX 2
#define STATS_BIN_INDEX 4

static pthread_once_t mib_once = PTHREAD_ONCE_INIT;

static void resolve_mibs(void) {
  for (int i = 0; i < MIB_COUNT; i++) {
    mibs[i].len = MIB_MAX;
    if (je.nametomib == NULL || je.bymib == NULL) {
      mibs[i].status = ENOSYS;
      continue;
    }
    mibs[i].status = je.nametomib(mibs[i].name, mibs[i].mib, &mibs[i].len);
  }
}

static int ensure_mibs(void) {
  if (asp_je_bind() != 0) return ENOSYS;
  pthread_once(&mib_once, resolve_mibs);
  return 0;
}

/* Reads a fixed-size value by cached MIB, optionally with one index component patched. Every
   return code is checked: Redis once read a key that 5.3 does not have and silently got 0
   (references/metrics.md §1.1). */
static int read_mib(int which, int patch_at, size_t index, void *out, size_t size) {
  cached_mib *m = &mibs[which];
  if (m->status != 0) return m->status;
  size_t mib[MIB_MAX];
  memcpy(mib, m->mib, sizeof(mib));
  if (patch_at >= 0) mib[patch_at] = index;
  size_t len = size;
  int rc = je.bymib(mib, m->len, out, &len, NULL, 0);
  if (rc == 0 && len != size) return EINVAL;
  return rc;
}

int asp_je_read_summary(asp_je_summary *out, int advance_epoch) {
  int rc = ensure_mibs();
  if (rc != 0) return rc;
  memset(out, 0, sizeof(*out));
  /* Writing epoch refreshes the cached statistics all stats.* reads are served from. */
  cached_mib *epoch = &mibs[MIB_EPOCH];
  if (epoch->status != 0) return epoch->status;
  uint64_t one = 1;
  size_t len = sizeof(out->epoch);
  rc = je.bymib(epoch->mib, epoch->len, &out->epoch, &len, advance_epoch ? &one : NULL,
                advance_epoch ? sizeof(one) : 0);
  if (rc != 0) return rc;
  if ((rc = read_mib(MIB_ALLOCATED, -1, 0, &out->allocated, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_ACTIVE, -1, 0, &out->active, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_RESIDENT, -1, 0, &out->resident, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_MAPPED, -1, 0, &out->mapped, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_RETAINED, -1, 0, &out->retained, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_METADATA, -1, 0, &out->metadata, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_PDIRTY, -1, 0, &out->pdirty, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_PMUZZY, -1, 0, &out->pmuzzy, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_TCACHE_BYTES, -1, 0, &out->tcache_bytes, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_PAGE, -1, 0, &out->page, sizeof(size_t))) != 0) return rc;
  if ((rc = read_mib(MIB_NARENAS, -1, 0, &out->narenas, sizeof(unsigned))) != 0) return rc;
  return 0;
}

int asp_je_read_bins(asp_je_bin *bins, unsigned cap, unsigned *count) {
  int rc = ensure_mibs();
  if (rc != 0) return rc;
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  if ((rc = je.bymib(mibs[MIB_EPOCH].mib, mibs[MIB_EPOCH].len, &epoch, &len, &epoch, sizeof(epoch))) != 0)
    return rc;
  unsigned nbins = 0;
  if ((rc = read_mib(MIB_NBINS, -1, 0, &nbins, sizeof(nbins))) != 0) return rc;
  *count = nbins;
  for (unsigned j = 0; j < nbins && j < cap; j++) {
    asp_je_bin *b = &bins[j];
    if ((rc = read_mib(MIB_BIN_SIZE, ARENAS_BIN_INDEX, j, &b->size, sizeof(size_t))) != 0) return rc;
    if ((rc = read_mib(MIB_BIN_NREGS, ARENAS_BIN_INDEX, j, &b->nregs, sizeof(uint32_t))) != 0) return rc;
    if ((rc = read_mib(MIB_BIN_SLAB_SIZE, ARENAS_BIN_INDEX, j, &b->slab_size, sizeof(size_t))) != 0) return rc;
    if ((rc = read_mib(MIB_BIN_CURREGS, STATS_BIN_INDEX, j, &b->curregs, sizeof(size_t))) != 0) return rc;
    if ((rc = read_mib(MIB_BIN_CURSLABS, STATS_BIN_INDEX, j, &b->curslabs, sizeof(size_t))) != 0) return rc;
    if ((rc = read_mib(MIB_BIN_NONFULL, STATS_BIN_INDEX, j, &b->nonfull_slabs, sizeof(size_t))) != 0) return rc;
  }
  return 0;
}

/* ---- raw access by name ---- */

int asp_je_read_any(const char *name, uint64_t *bits, size_t *size) {
  if (asp_je_bind() != 0) return ENOSYS;
  unsigned char buf[8] = {0};
  size_t len = sizeof(buf);
  int rc = je.mallctl(name, buf, &len, NULL, 0);
  if (rc == EINVAL && len < sizeof(buf) && len > 0) rc = 0; /* a narrower type, value copied */
  if (rc != 0) return rc;
  *size = len;
  switch (len) {
    case 1: *bits = buf[0]; break;
    case 4: { uint32_t v; memcpy(&v, buf, 4); *bits = v; break; }
    case 8: memcpy(bits, buf, 8); break;
    default: { uint64_t v = 0; memcpy(&v, buf, len < 8 ? len : 8); *bits = v; }
  }
  return 0;
}

int asp_je_read_string(const char *name, char *out, size_t cap) {
  if (asp_je_bind() != 0) return ENOSYS;
  const char *value = NULL;
  size_t len = sizeof(value);
  int rc = je.mallctl(name, &value, &len, NULL, 0);
  if (rc != 0) return rc;
  if (len != sizeof(value)) return EINVAL;
  snprintf(out, cap, "%s", value != NULL ? value : "");
  return 0;
}

int asp_je_write_void(const char *name) {
  if (asp_je_bind() != 0) return ENOSYS;
  return je.mallctl(name, NULL, NULL, NULL, 0);
}

int asp_je_write_sized(const char *name, uint64_t bits, size_t size) {
  if (asp_je_bind() != 0) return ENOSYS;
  unsigned char buf[8];
  switch (size) {
    /* Every 1-byte mallctl of jemalloc 5.3 is a C bool, and jemalloc copies the byte unchecked:
       writing 2 to thread.tcache.enabled, then 0, crashes it (SIGSEGV in a mutex of the tcache;
       found by native/fuzz/mallctl). Only 0 and 1 are bools. */
    case 1: if (bits > 1) return EINVAL; buf[0] = (unsigned char)bits; break;
    case 4: { uint32_t v = (uint32_t)bits; memcpy(buf, &v, 4); break; }
    case 8: memcpy(buf, &bits, 8); break;
    default: return EINVAL;
  }
  return je.mallctl(name, NULL, NULL, buf, size);
}

int asp_je_write_string(const char *name, const char *value) {
  if (asp_je_bind() != 0) return ENOSYS;
  return je.mallctl(name, NULL, NULL, (void *)&value, sizeof(value));
}

int asp_je_purge(void) {
  char name[32];
  snprintf(name, sizeof(name), "arena.%d.purge", ASP_JE_ARENAS_ALL);
  return asp_je_write_void(name);
}

int asp_je_stats_print(asp_je_write_cb cb, void *opaque, const char *opts) {
  if (asp_je_bind() != 0 || je.stats_print == NULL) return ENOSYS;
  je.stats_print(cb, opaque, opts);
  return 0;
}
