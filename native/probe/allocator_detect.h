/* Which allocator serves malloc in this process, found at run time (one binary for all). */
#ifndef ALLOCSCOPE_PROBE_ALLOCATOR_DETECT_H_
#define ALLOCSCOPE_PROBE_ALLOCATOR_DETECT_H_

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  ASP_ALLOCATOR_UNKNOWN = 0,
  ASP_ALLOCATOR_GLIBC = 1,
  ASP_ALLOCATOR_JEMALLOC = 2,
  ASP_ALLOCATOR_TCMALLOC = 3,
  ASP_ALLOCATOR_MIMALLOC = 4,
  ASP_ALLOCATOR_MUSL = 5
} asp_allocator_kind;

typedef struct {
  asp_allocator_kind kind;
  char version[64];         /* "" when the allocator has no version API (musl) */
  char detected_by[384];    /* human-readable evidence, e.g. "malloc and mallctl both in /usr/lib/.../libjemalloc.so.2" */
  char malloc_library[256]; /* the object that provides the malloc symbol the process calls */
  char symbol_prefix[16];   /* "" or "je_" / "_rjem_" for prefixed jemalloc builds */
  /* The allocator of plain malloc. Equal to kind, except under a prefixed jemalloc: kind is then
     jemalloc (the heap the program manages through je_malloc) and this the allocator behind
     malloc itself (glibc, musl or unknown): a second, live heap. */
  asp_allocator_kind malloc_kind;
} asp_allocator;

/* Fills *out. Cheap after the first call (the answer cannot change: malloc is bound at start-up). */
void asp_detect_allocator(asp_allocator *out);

/* Stable lower-case name for a kind: "glibc", "jemalloc", ... */
const char *asp_allocator_name(asp_allocator_kind kind);

#ifdef __cplusplus
}
#endif
#endif
