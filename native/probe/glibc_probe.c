#define _GNU_SOURCE
#include "glibc_probe.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

/* glibc < 2.33's struct mallinfo: int fields that wrap above 2 GiB (man mallinfo, BUGS). */
typedef struct {
  int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} legacy_mallinfo;

int asp_glibc_mallinfo2(asp_mallinfo2 *out) {
  /* dlsym per call costs ~100 ns; caching would need a once-guard for the same gain. Resolved
     lazily so a musl process never calls a missing symbol. */
  static asp_mallinfo2 (*mallinfo2_fn)(void) = NULL;
  static legacy_mallinfo (*mallinfo_fn)(void) = NULL;
  static int resolved = 0;
  if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) {
    mallinfo2_fn = (asp_mallinfo2(*)(void))dlsym(RTLD_DEFAULT, "mallinfo2");
    mallinfo_fn = (legacy_mallinfo(*)(void))dlsym(RTLD_DEFAULT, "mallinfo");
    __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
  }
  if (mallinfo2_fn != NULL) {
    *out = mallinfo2_fn();
    return 0;
  }
  if (mallinfo_fn != NULL) {
    legacy_mallinfo m = mallinfo_fn();
    out->arena = (unsigned)m.arena;
    out->ordblks = (unsigned)m.ordblks;
    out->smblks = (unsigned)m.smblks;
    out->hblks = (unsigned)m.hblks;
    out->hblkhd = (unsigned)m.hblkhd;
    out->usmblks = (unsigned)m.usmblks;
    out->fsmblks = (unsigned)m.fsmblks;
    out->uordblks = (unsigned)m.uordblks;
    out->fordblks = (unsigned)m.fordblks;
    out->keepcost = (unsigned)m.keepcost;
    return 1;
  }
  return -1;
}

char *asp_glibc_malloc_info(size_t *len) {
  int (*malloc_info_fn)(int, FILE *) = (int (*)(int, FILE *))dlsym(RTLD_DEFAULT, "malloc_info");
  if (malloc_info_fn == NULL) return NULL;
  char *text = NULL;
  size_t size = 0;
  FILE *stream = open_memstream(&text, &size);
  if (stream == NULL) return NULL;
  /* options must be 0 (glibc malloc.c __malloc_info: anything else is EINVAL). */
  int rc = malloc_info_fn(0, stream);
  fclose(stream);
  if (rc != 0) {
    free(text);
    return NULL;
  }
  *len = size;
  return text;
}

int asp_glibc_malloc_trim(size_t pad) {
  int (*trim_fn)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "malloc_trim");
  if (trim_fn == NULL) return -1;
  return trim_fn(pad) ? 1 : 0;
}
