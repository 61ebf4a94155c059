/* The process's own memory as the kernel sees it: /proc/self/statm and /proc/self/status. */
#ifndef ALLOCSCOPE_PROBE_PROCESS_PROBE_H_
#define ALLOCSCOPE_PROBE_PROCESS_PROBE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int64_t size_pages;     /* statm field 1: VmSize in pages */
  int64_t resident_pages; /* statm field 2: RSS in pages */
  int64_t shared_pages;   /* statm field 3: RssFile + RssShmem in pages (Linux >= 4.5) */
} asp_statm;

#define ASP_STATUS_MAX_GROUPS 256

/* Fields of /proc/self/status in kB; -1 when the line is absent (older kernels). And the
   credentials of the process's leader thread: Uid: and Gid: (real, effective, saved, filesystem;
   -1 when absent) and the supplementary groups (n_groups -1 when the line is absent or lists more
   than ASP_STATUS_MAX_GROUPS). */
typedef struct {
  int64_t vm_hwm_kb;
  int64_t vm_rss_kb;
  int64_t rss_anon_kb;
  int64_t rss_file_kb;
  int64_t rss_shmem_kb;
  int64_t vm_swap_kb;
  int64_t threads;
  int64_t uids[4];
  int64_t gids[4];
  int n_groups;
  uint32_t groups[ASP_STATUS_MAX_GROUPS];
} asp_status;

/* 0 on success, -1 if the file cannot be read. Both keep their fd open and pread it (0.7 us
   instead of 3.4 us for open+read+close, references/limits.md §4); after fork() the child
   reopens (a pthread_atfork handler closes the inherited fd), because /proc/self was resolved
   to the parent's pid when the fd was opened. */
int asp_read_statm(asp_statm *out);
int asp_read_status(asp_status *out);

/* Parse NUL-terminated statm / status text (exposed for the fuzz targets, native/fuzz/).
   asp_parse_statm returns 0, or -1 when the first three fields are not numbers. */
int asp_parse_statm(const char *text, asp_statm *out);
void asp_parse_status(const char *text, asp_status *out);

int64_t asp_page_size(void);
int64_t asp_monotonic_ns(void);

#ifdef __cplusplus
}
#endif
#endif
