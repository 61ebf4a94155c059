/* libFuzzer target: the lock-free census of glibc's free lists (native/probe/glibc_census.c). The
   census reads an allocator that other threads change under it, so it must survive any bytes
   where it expects an arena and chunks: pointers to anywhere, lists that cycle, bins that point at
   each other. Input: words laid out as a fake memory region; an odd word becomes a pointer into the
   region (so lists can form and cycle), an even word stays as it is (anywhere, mostly unmapped).
   Invariants: it returns; it never writes the region; it walks at most max_chunks chunks on at
   most 1024 arenas; what it counts adds up (fastbin bytes within all free bytes); and it counts
   the same through the pipe as through process_vm_readv alone. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../probe/glibc_census.h"

enum { REGION = 64 * 1024, MAX_CHUNKS = 10000 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t *region = NULL;
  static uint8_t *copy = NULL;
  if (region == NULL) {
    region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    copy = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED || copy == MAP_FAILED) abort();
  }
  memset(region, 0, REGION);
  size_t words = size / 8 < REGION / 8 ? size / 8 : REGION / 8;
  /* Whether every word either points into the region or lies below 64 KiB (never mapped:
     vm.mmap_min_addr); otherwise a list may run through memory that changes between two walks
     (this very stack, the census's own buffers), and the two readers may fairly differ. */
  int closed = 1;
  for (size_t i = 0; i < words; i++) {
    uint64_t word;
    memcpy(&word, data + i * 8, 8);
    if (word & 1) word = (uint64_t)(uintptr_t)region + (((word >> 1) % REGION) & ~(uint64_t)7);
    else if (word >= 65536) closed = 0;
    memcpy(region + i * 8, &word, 8);
  }
  memcpy(copy, region, REGION);
  asp_glibc_census by_reader[2];
  for (int reader = ASP_CENSUS_READ_PIPE; reader <= ASP_CENSUS_READ_VM; reader++) {
    asp_glibc_census census;
    int rc = asp_glibc_census_walk((unsigned long)(uintptr_t)region, &census, MAX_CHUNKS, reader);
    if (memcmp(copy, region, REGION) != 0) abort();
    if (rc != ASP_CENSUS_OK && rc != ASP_CENSUS_NOT_FOUND) abort();
    if (census.arenas > 1024) abort();
    if (census.ordblks + census.smblks > (size_t)MAX_CHUNKS + census.arenas) abort();
    if (census.smblks > 0 && census.fsmblks > census.fordblks) abort();
    if (rc == ASP_CENSUS_NOT_FOUND && census.arenas != 0) abort();
    by_reader[reader] = census;
  }
  /* Nothing changes the region between the two walks: within it, both readers see the same lists. */
  if (closed && memcmp(&by_reader[0], &by_reader[1], sizeof by_reader[0]) != 0) abort();
  return 0;
}
