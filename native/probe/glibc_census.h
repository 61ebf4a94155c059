/* A census of glibc malloc's free lists taken without its locks: what mallinfo2 would count, read
   through fault-safe system calls while the process runs on. It exists to answer, before calling
   mallinfo2, "how long would mallinfo2 hold an arena's lock?" (it walks every free chunk, ~150 ns
   each: references/limits.md §1). See glibc_census.c for how the arenas are found and why a
   racing process can make the counts inexact but never makes the census crash or block. */
#ifndef ALLOCSCOPE_PROBE_GLIBC_CENSUS_H_
#define ALLOCSCOPE_PROBE_GLIBC_CENSUS_H_

#include <stddef.h>

#include "glibc_probe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Named after the mallinfo2 fields they mirror (glibc malloc.c int_mallinfo). */
typedef struct {
  size_t arenas;       /* arenas walked: main_arena and every arena on its `next` ring */
  size_t arena;        /* Σ system_mem: mallinfo2.arena */
  size_t ordblks;      /* chunks in the bins, plus each arena's top: mallinfo2.ordblks */
  size_t smblks;       /* chunks in the fastbins: mallinfo2.smblks */
  size_t fordblks;     /* bytes of all of the above: mallinfo2.fordblks */
  size_t fsmblks;      /* bytes in the fastbins: mallinfo2.fsmblks */
  size_t keepcost;     /* main_arena's top chunk: mallinfo2.keepcost */
  int complete;        /* 1: every list was walked to its end; 0: stopped at max_chunks, or a list
                          changed or vanished under the walk (the counts are then a lower bound) */
} asp_glibc_census;

enum {
  ASP_CENSUS_OK = 0,
  ASP_CENSUS_NOT_GLIBC = -1,      /* no glibc malloc_trim in this process */
  ASP_CENSUS_UNSUPPORTED = -2,    /* a glibc whose malloc_state layout this file does not know */
  ASP_CENSUS_NOT_FOUND = -3,      /* no main_arena recognised in glibc's data segment */
  ASP_CENSUS_READ_REFUSED = -4    /* process_vm_readv refused on our own pid (seccomp) */
};

/* The chunks on the free lists, the part of a census a mallinfo2 walks chunk by chunk: ordblks
   also counts each arena's top chunk, which costs that walk nothing. */
size_t asp_glibc_census_listed(const asp_glibc_census *census);

/* How the census reads memory that may be unmapped under it (glibc_census.c): through a pipe of
   its own, falling back to process_vm_readv where a read faults or the pipe is refused (the
   default), or process_vm_readv alone (for comparison: scripts/bench/census, and the tests). */
enum { ASP_CENSUS_READ_PIPE = 0, ASP_CENSUS_READ_VM = 1 };

/* Walks at most max_chunks free chunks. Never takes a malloc lock, never calls malloc. */
int asp_glibc_census_take(asp_glibc_census *out, size_t max_chunks);

/* The same, reading with `reader` (an ASP_CENSUS_READ_*). */
int asp_glibc_census_take_with(asp_glibc_census *out, size_t max_chunks, int reader);

/* mallinfo2's hblks and hblkhd (mmapped chunks, on no arena's list) read from glibc's mp_ without
   a lock. 0 on success, else an ASP_CENSUS_* refusal. */
int asp_glibc_mmapped(size_t *count, size_t *bytes);

/* A whole mallinfo2 taken without locks: the census plus mp_'s mmapped figures (usmblks 0, as in
   glibc). *complete as in the census. 0 on success, else an ASP_CENSUS_* refusal. */
int asp_glibc_lock_free_mallinfo2(asp_mallinfo2 *out, size_t max_chunks, int *complete);

/* The same walk over an arena ring starting at `arena` (an address in this process), read with
   `reader`, for the fuzz target, which builds fake arenas: any address is safe to pass. */
int asp_glibc_census_walk(unsigned long arena, asp_glibc_census *out, size_t max_chunks, int reader);

#ifdef __cplusplus
}
#endif
#endif
