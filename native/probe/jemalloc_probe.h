/* jemalloc through mallctl, found with dlsym (plain, je_ or _rjem_ prefixed). Every function
   returns 0 or an errno value from mallctl (ENOENT unknown name, EINVAL size mismatch, EPERM
   read-only, EAGAIN, EFAULT), or ENOSYS when no jemalloc is in the process. */
#ifndef ALLOCSCOPE_PROBE_JEMALLOC_PROBE_H_
#define ALLOCSCOPE_PROBE_JEMALLOC_PROBE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* jemalloc 5.x MALLCTL_ARENAS_ALL: the index of the merged statistics of all arenas. */
#define ASP_JE_ARENAS_ALL 4096

/* 0 if some mallctl (any prefix) was found. */
int asp_je_bind(void);
/* 0 if the bound mallctl carries a prefix (je_, _rjem_): used by detection. */
int asp_je_bind_prefixed(void);
const char *asp_je_symbol_prefix(void);
void asp_je_version(char *out, size_t cap);

/* Raw mallctl with the bound prefix. */
int asp_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* Summary in jemalloc's own names; epoch is advanced first so stats.* are fresh. MIBs are
   resolved once and cached (a read by MIB is 20-27 ns, by name 90-120 ns; limits.md §2). */
typedef struct {
  uint64_t epoch;
  size_t allocated, active, resident, mapped, retained, metadata;
  size_t pdirty, pmuzzy;  /* pages, stats.arenas.<ALL>.pdirty / pmuzzy */
  size_t tcache_bytes;    /* stats.arenas.<ALL>.tcache_bytes (5.3, undocumented but in ctl.c) */
  size_t page;            /* arenas.page */
  unsigned narenas;       /* arenas.narenas */
} asp_je_summary;
/* advance_epoch 0 reads the figures of the last epoch (e.g. the one malloc_stats_print took). */
int asp_je_read_summary(asp_je_summary *out, int advance_epoch);

/* Per-bin static layout and merged current use, after an epoch. */
typedef struct {
  size_t size;         /* arenas.bin.<j>.size */
  uint32_t nregs;      /* arenas.bin.<j>.nregs */
  size_t slab_size;    /* arenas.bin.<j>.slab_size */
  size_t curregs;      /* stats.arenas.<ALL>.bins.<j>.curregs */
  size_t curslabs;     /* stats.arenas.<ALL>.bins.<j>.curslabs */
  size_t nonfull_slabs;/* stats.arenas.<ALL>.bins.<j>.nonfull_slabs */
} asp_je_bin;
/* Fills up to cap bins; *count receives arenas.nbins. */
int asp_je_read_bins(asp_je_bin *bins, unsigned cap, unsigned *count);

/* Read a value of unknown size with one mallctl call into an 8-byte buffer. jemalloc's READ()
   macro copies min(size, 8) bytes and sets *oldlenp to the real size on a mismatch (ctl.c), so
   one call yields both the value and its width, and a read with side effects (arenas.create)
   happens once. *size receives 1, 4 or 8. */
int asp_je_read_any(const char *name, uint64_t *bits, size_t *size);
/* Reads a `const char *` mallctl and copies the string. Only for names known to be strings:
   a number read as a pointer would be dereferenced. */
int asp_je_read_string(const char *name, char *out, size_t cap);

int asp_je_write_void(const char *name);
int asp_je_write_sized(const char *name, uint64_t bits, size_t size);
int asp_je_write_string(const char *name, const char *value);

/* arena.<ALL>.purge: return all unused dirty and muzzy pages now. */
int asp_je_purge(void);

/* malloc_stats_print into a callback. */
typedef void (*asp_je_write_cb)(void *opaque, const char *text);
int asp_je_stats_print(asp_je_write_cb cb, void *opaque, const char *opts);

#ifdef __cplusplus
}
#endif
#endif
