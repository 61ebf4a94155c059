#define _GNU_SOURCE
#include "glibc_probe.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
  /* The text goes into an mmap'd buffer through fmemopen, not open_memstream: a memstream
     reallocs through malloc while malloc_info prints, so the heap would change under the very
     figures being reported and they could never be compared with mallinfo2's. The buffer
     doubles until the output fits (0.6-3.8 KB per arena is typical; limits.md §1a). */
  for (size_t cap = 256 * 1024; cap <= 64 * 1024 * 1024; cap *= 4) {
    char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return NULL;
    FILE *stream = fmemopen(buf, cap, "w");
    if (stream == NULL) {
      munmap(buf, cap);
      return NULL;
    }
    setvbuf(stream, NULL, _IONBF, 0);
    /* options must be 0 (glibc malloc.c __malloc_info: anything else is EINVAL). */
    int rc = malloc_info_fn(0, stream);
    long written = ftell(stream);
    fclose(stream);
    if (rc != 0 || written < 0) {
      munmap(buf, cap);
      return NULL;
    }
    if ((size_t)written < cap - 1) {
      /* Only now, with the walk done, copy into a malloc'd string for the caller. */
      char *text = malloc((size_t)written + 1);
      if (text != NULL) {
        memcpy(text, buf, (size_t)written);
        text[written] = '\0';
        *len = (size_t)written;
      }
      munmap(buf, cap);
      return text;
    }
    munmap(buf, cap); /* truncated: try a larger buffer */
  }
  return NULL;
}

int asp_glibc_malloc_trim(size_t pad) {
  int (*trim_fn)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "malloc_trim");
  if (trim_fn == NULL) return -1;
  return trim_fn(pad) ? 1 : 0;
}
