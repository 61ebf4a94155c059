/* mimalloc 2.x through mi_process_info / mi_collect / mi_version, found with dlsym. */
#ifndef ALLOCSCOPE_PROBE_MIMALLOC_PROBE_H_
#define ALLOCSCOPE_PROBE_MIMALLOC_PROBE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* mi_process_info's outputs, in its own names. On Linux current_rss is current_commit, not RSS
   (mimalloc.h doc; measured 32 MiB "rss" at 1.7 MiB real RSS, limits.md §3). */
typedef struct {
  size_t elapsed_msecs, user_msecs, system_msecs, current_rss, peak_rss, current_commit,
      peak_commit, page_faults;
} asp_mi_info;

/* 0 filled, -1 no mimalloc. */
int asp_mi_process_info(asp_mi_info *out);
/* 0 done, -1 no mimalloc. */
int asp_mi_collect(int force);
/* mi_version() (major*100 + minor*10 + patch), or -1. */
int asp_mi_version(void);

#ifdef __cplusplus
}
#endif
#endif
