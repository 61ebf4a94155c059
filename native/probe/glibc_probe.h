/* glibc ptmalloc: mallinfo2 (or mallinfo), malloc_info XML, malloc_trim. Found with dlsym so one
   binary runs on any glibc and on musl (where all of these are absent). */
#ifndef ALLOCSCOPE_PROBE_GLIBC_PROBE_H_
#define ALLOCSCOPE_PROBE_GLIBC_PROBE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same layout as glibc's struct mallinfo2 (malloc.h, glibc >= 2.33); declared here so the build
   does not depend on the build machine's glibc version. */
typedef struct {
  size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} asp_mallinfo2;

/* 0: filled from mallinfo2. 1: filled from the int-based mallinfo (glibc < 2.33): values wrap
   modulo 4 GiB, reinterpreted as unsigned. -1: neither exists (musl, static non-glibc). */
int asp_glibc_mallinfo2(asp_mallinfo2 *out);

/* malloc_info(0, ...) captured in memory. Returns a buffer the caller releases with free(), or
   NULL if malloc_info is absent or failed. *len receives the length without the NUL. */
char *asp_glibc_malloc_info(size_t *len);

/* malloc_trim(pad): 1 if memory was released, 0 if not, -1 if malloc_trim is absent. */
int asp_glibc_malloc_trim(size_t pad);

#ifdef __cplusplus
}
#endif
#endif
