#include "sample.h"

#include <math.h>
#include <sys/resource.h>

#include "glibc_census.h"
#include "glibc_probe.h"
#include "jemalloc_probe.h"
#include "mimalloc_probe.h"
#include "process_probe.h"
#include "tcmalloc_probe.h"

#define ASP_SLOT_NAME(id, name) name,
const char *const asp_sample_slot_names[ASP_SAMPLE_SLOT_COUNT] = {ASP_SAMPLE_FIELDS(ASP_SLOT_NAME)};
#undef ASP_SLOT_NAME

static int read_allocator(asp_allocator_kind kind, int flags, double *s) {
  switch (kind) {
    case ASP_ALLOCATOR_GLIBC: {
      asp_mallinfo2 m;
      int rc;
      if (flags & ASP_SAMPLE_GLIBC_LOCK_FREE) {
        /* At most a million chunks (~0.5 s, scripts/bench/RESULTS.md): past that the free figures
           are a lower bound. */
        int complete = 0;
        if (asp_glibc_lock_free_mallinfo2(&m, 1000000, &complete) != 0) return -1;
        rc = 0;
      } else {
        rc = asp_glibc_mallinfo2(&m);
      }
      if (rc < 0) return -1;
      s[ASP_SLOT_MI2_LEGACY] = rc;
      s[ASP_SLOT_MI2_ARENA] = (double)m.arena;
      s[ASP_SLOT_MI2_ORDBLKS] = (double)m.ordblks;
      s[ASP_SLOT_MI2_SMBLKS] = (double)m.smblks;
      s[ASP_SLOT_MI2_HBLKS] = (double)m.hblks;
      s[ASP_SLOT_MI2_HBLKHD] = (double)m.hblkhd;
      s[ASP_SLOT_MI2_USMBLKS] = (double)m.usmblks;
      s[ASP_SLOT_MI2_FSMBLKS] = (double)m.fsmblks;
      s[ASP_SLOT_MI2_UORDBLKS] = (double)m.uordblks;
      s[ASP_SLOT_MI2_FORDBLKS] = (double)m.fordblks;
      s[ASP_SLOT_MI2_KEEPCOST] = (double)m.keepcost;
      return 0;
    }
    case ASP_ALLOCATOR_JEMALLOC: {
      asp_je_summary j;
      int rc = asp_je_read_summary(&j, !(flags & ASP_SAMPLE_KEEP_EPOCH));
      if (rc != 0) return rc;
      s[ASP_SLOT_JE_EPOCH] = (double)j.epoch;
      s[ASP_SLOT_JE_ALLOCATED] = (double)j.allocated;
      s[ASP_SLOT_JE_ACTIVE] = (double)j.active;
      s[ASP_SLOT_JE_RESIDENT] = (double)j.resident;
      s[ASP_SLOT_JE_MAPPED] = (double)j.mapped;
      s[ASP_SLOT_JE_RETAINED] = (double)j.retained;
      s[ASP_SLOT_JE_METADATA] = (double)j.metadata;
      s[ASP_SLOT_JE_PDIRTY] = (double)j.pdirty;
      s[ASP_SLOT_JE_PMUZZY] = (double)j.pmuzzy;
      s[ASP_SLOT_JE_TCACHE_BYTES] = (double)j.tcache_bytes;
      s[ASP_SLOT_JE_PAGE] = (double)j.page;
      s[ASP_SLOT_JE_NARENAS] = (double)j.narenas;
      return 0;
    }
    case ASP_ALLOCATOR_TCMALLOC: {
      asp_tc_summary t;
      int rc = asp_tc_read_summary(&t);
      if (rc < 0) return -1;
      if (rc == 0) return 2; /* ENOENT: a property this tcmalloc does not know */
      s[ASP_SLOT_TC_ALLOCATED] = (double)t.current_allocated_bytes;
      s[ASP_SLOT_TC_HEAP_SIZE] = (double)t.heap_size;
      s[ASP_SLOT_TC_PAGEHEAP_FREE] = (double)t.pageheap_free_bytes;
      s[ASP_SLOT_TC_PAGEHEAP_UNMAPPED] = (double)t.pageheap_unmapped_bytes;
      return 0;
    }
    case ASP_ALLOCATOR_MIMALLOC: {
      asp_mi_info p;
      if (asp_mi_process_info(&p) != 0) return -1;
      s[ASP_SLOT_MI_ELAPSED] = (double)p.elapsed_msecs;
      s[ASP_SLOT_MI_USER] = (double)p.user_msecs;
      s[ASP_SLOT_MI_SYSTEM] = (double)p.system_msecs;
      s[ASP_SLOT_MI_CURRENT_RSS] = (double)p.current_rss;
      s[ASP_SLOT_MI_PEAK_RSS] = (double)p.peak_rss;
      s[ASP_SLOT_MI_CURRENT_COMMIT] = (double)p.current_commit;
      s[ASP_SLOT_MI_PEAK_COMMIT] = (double)p.peak_commit;
      s[ASP_SLOT_MI_PAGE_FAULTS] = (double)p.page_faults;
      return 0;
    }
    default:
      return -1;
  }
}

void asp_sample(asp_allocator_kind kind, int flags, double *s) {
  for (int i = 0; i < ASP_SAMPLE_SLOT_COUNT; i++) s[i] = NAN;
  int64_t start = asp_monotonic_ns();
  s[ASP_SLOT_MONOTONIC_NS] = (double)start;
  s[ASP_SLOT_PAGE_SIZE] = (double)asp_page_size();

  if (flags & ASP_SAMPLE_WITH_ALLOCATOR) s[ASP_SLOT_ALLOCATOR_STATUS] = read_allocator(kind, flags, s);

  /* RSS immediately after the allocator's books. */
  asp_statm statm;
  if (asp_read_statm(&statm) == 0) {
    s[ASP_SLOT_STATM_SIZE] = (double)statm.size_pages;
    s[ASP_SLOT_STATM_RESIDENT] = (double)statm.resident_pages;
    s[ASP_SLOT_STATM_SHARED] = (double)statm.shared_pages;
  }
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) == 0) s[ASP_SLOT_RUSAGE_MAXRSS] = (double)usage.ru_maxrss;
  if (flags & ASP_SAMPLE_WITH_STATUS) {
    asp_status st;
    if (asp_read_status(&st) == 0) {
#define KB_SLOT(slot, value) s[slot] = (value) >= 0 ? (double)(value) : NAN
      KB_SLOT(ASP_SLOT_STATUS_VMHWM, st.vm_hwm_kb);
      KB_SLOT(ASP_SLOT_STATUS_VMRSS, st.vm_rss_kb);
      KB_SLOT(ASP_SLOT_STATUS_RSSANON, st.rss_anon_kb);
      KB_SLOT(ASP_SLOT_STATUS_RSSFILE, st.rss_file_kb);
      KB_SLOT(ASP_SLOT_STATUS_RSSSHMEM, st.rss_shmem_kb);
      KB_SLOT(ASP_SLOT_STATUS_VMSWAP, st.vm_swap_kb);
      KB_SLOT(ASP_SLOT_STATUS_THREADS, st.threads);
#undef KB_SLOT
    }
  }
  s[ASP_SLOT_COST_NS] = (double)(asp_monotonic_ns() - start);
}
