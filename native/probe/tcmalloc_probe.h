/* gperftools tcmalloc through its C API (malloc_extension_c.h), found with dlsym. */
#ifndef ALLOCSCOPE_PROBE_TCMALLOC_PROBE_H_
#define ALLOCSCOPE_PROBE_TCMALLOC_PROBE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1: known property, value set; 0: unknown property; -1: no tcmalloc in the process. */
int asp_tc_property(const char *name, size_t *value);
/* 0 done, -1 absent. */
int asp_tc_release_free_memory(void);
/* MallocExtension_GetStats text into out (truncated to cap); 0 or -1. */
int asp_tc_stats_text(char *out, int cap);
/* "gperftools 2.10" or "" */
const char *asp_tc_version(void);

/* The summary read for a snapshot. Each generic.* property runs ExtractStats over every size
   class (about 4 us each, limits.md §3), so only two of them are read; pageheap_* are field reads. */
typedef struct {
  size_t current_allocated_bytes; /* generic.current_allocated_bytes */
  size_t heap_size;               /* generic.heap_size */
  size_t pageheap_free_bytes;     /* tcmalloc.pageheap_free_bytes */
  size_t pageheap_unmapped_bytes; /* tcmalloc.pageheap_unmapped_bytes */
} asp_tc_summary;
int asp_tc_read_summary(asp_tc_summary *out);

#ifdef __cplusplus
}
#endif
#endif
