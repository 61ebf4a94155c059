/* One sample: the live allocator's totals and the kernel's RSS figures, read back to back with
   one monotonic timestamp, so every ratio's numerator and denominator come from the same moment
   (DESIGN.md "The Snapshot"). The addon copies the slots into a Float64Array; the agent writes
   them as JSON. Slot names are the sources' own; TypeScript maps them (lib/allocators/). */
#ifndef ALLOCSCOPE_PROBE_SAMPLE_H_
#define ALLOCSCOPE_PROBE_SAMPLE_H_

#include "allocator_detect.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASP_SAMPLE_FIELDS(X)                                          \
  X(MONOTONIC_NS, "monotonicNs")                                      \
  X(COST_NS, "costNs")                                                \
  X(ALLOCATOR_STATUS, "allocatorStatus")                              \
  X(PAGE_SIZE, "pageSize")                                            \
  X(STATM_SIZE, "statm.size")                                         \
  X(STATM_RESIDENT, "statm.resident")                                 \
  X(STATM_SHARED, "statm.shared")                                     \
  X(RUSAGE_MAXRSS, "rusage.ru_maxrss")                               \
  X(STATUS_VMHWM, "status.VmHWM")                                     \
  X(STATUS_VMRSS, "status.VmRSS")                                     \
  X(STATUS_RSSANON, "status.RssAnon")                                 \
  X(STATUS_RSSFILE, "status.RssFile")                                 \
  X(STATUS_RSSSHMEM, "status.RssShmem")                               \
  X(STATUS_VMSWAP, "status.VmSwap")                                   \
  X(STATUS_THREADS, "status.Threads")                                 \
  X(MI2_LEGACY, "mallinfo2.fromLegacyMallinfo")                       \
  X(MI2_ARENA, "mallinfo2.arena")                                     \
  X(MI2_ORDBLKS, "mallinfo2.ordblks")                                 \
  X(MI2_SMBLKS, "mallinfo2.smblks")                                   \
  X(MI2_HBLKS, "mallinfo2.hblks")                                     \
  X(MI2_HBLKHD, "mallinfo2.hblkhd")                                   \
  X(MI2_USMBLKS, "mallinfo2.usmblks")                                 \
  X(MI2_FSMBLKS, "mallinfo2.fsmblks")                                 \
  X(MI2_UORDBLKS, "mallinfo2.uordblks")                               \
  X(MI2_FORDBLKS, "mallinfo2.fordblks")                               \
  X(MI2_KEEPCOST, "mallinfo2.keepcost")                               \
  X(JE_EPOCH, "jemalloc.epoch")                                       \
  X(JE_ALLOCATED, "jemalloc.stats.allocated")                         \
  X(JE_ACTIVE, "jemalloc.stats.active")                               \
  X(JE_RESIDENT, "jemalloc.stats.resident")                           \
  X(JE_MAPPED, "jemalloc.stats.mapped")                               \
  X(JE_RETAINED, "jemalloc.stats.retained")                           \
  X(JE_METADATA, "jemalloc.stats.metadata")                           \
  X(JE_PDIRTY, "jemalloc.stats.arenas.4096.pdirty")                   \
  X(JE_PMUZZY, "jemalloc.stats.arenas.4096.pmuzzy")                   \
  X(JE_TCACHE_BYTES, "jemalloc.stats.arenas.4096.tcache_bytes")       \
  X(JE_PAGE, "jemalloc.arenas.page")                                  \
  X(JE_NARENAS, "jemalloc.arenas.narenas")                            \
  X(TC_ALLOCATED, "tcmalloc.generic.current_allocated_bytes")         \
  X(TC_HEAP_SIZE, "tcmalloc.generic.heap_size")                       \
  X(TC_PAGEHEAP_FREE, "tcmalloc.tcmalloc.pageheap_free_bytes")        \
  X(TC_PAGEHEAP_UNMAPPED, "tcmalloc.tcmalloc.pageheap_unmapped_bytes")\
  X(MI_ELAPSED, "mimalloc.elapsed_msecs")                             \
  X(MI_USER, "mimalloc.user_msecs")                                   \
  X(MI_SYSTEM, "mimalloc.system_msecs")                               \
  X(MI_CURRENT_RSS, "mimalloc.current_rss")                           \
  X(MI_PEAK_RSS, "mimalloc.peak_rss")                                 \
  X(MI_CURRENT_COMMIT, "mimalloc.current_commit")                     \
  X(MI_PEAK_COMMIT, "mimalloc.peak_commit")                           \
  X(MI_PAGE_FAULTS, "mimalloc.page_faults")

#define ASP_SLOT_ENUM(id, name) ASP_SLOT_##id,
typedef enum { ASP_SAMPLE_FIELDS(ASP_SLOT_ENUM) ASP_SAMPLE_SLOT_COUNT } asp_sample_slot;
#undef ASP_SLOT_ENUM

/* Name of each slot, in slot order. */
extern const char *const asp_sample_slot_names[ASP_SAMPLE_SLOT_COUNT];

/* Flags for asp_sample. */
/* Also parse /proc/self/status (file/shmem split, swap). Off by default: the kernel takes
   8-15 us to format it (limits.md §4; 13 us measured in Node 20 here) against ~1 us for statm,
   which already gives RSS and its anon share, and getrusage, which gives the peak. */
#define ASP_SAMPLE_WITH_STATUS 1
#define ASP_SAMPLE_WITH_ALLOCATOR 2 /* read the live allocator's totals */
#define ASP_SAMPLE_KEEP_EPOCH 4     /* jemalloc: do not advance the epoch (read the last one's figures) */
#define ASP_SAMPLE_GLIBC_LOCK_FREE 8 /* glibc: mallinfo2's figures from the lock-free census (glibc_census.h), no lock taken */

/* Fills every slot; slots a source did not provide are NaN. allocatorStatus is 0 when the
   allocator read succeeded, an errno from mallctl, or -1 when the allocator has no totals. */
void asp_sample(asp_allocator_kind kind, int flags, double *slots);

#ifdef __cplusplus
}
#endif
#endif
