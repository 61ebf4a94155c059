/* The lock-free census of glibc's free lists against mallinfo2, on one heap, in one process:
   the census through its pipe (the default), through process_vm_readv alone (what it was, and
   what it falls back to), and mallinfo2, interleaved REPS times; the medians, and whether each
   census equals mallinfo2 (the heap is quiet: one thread, nothing allocates meanwhile).
     census_bench churn N SLOTS REPS      N random malloc/free (16 B - 4 KiB) over SLOTS slots
     census_bench fragment N - REPS       N blocks of 16-512 B, every other one freed
   Prints one JSON line. Built by run.js with gcc. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "glibc_census.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median_of(double *xs, int n) {
  qsort(xs, (size_t)n, sizeof(double), by_value);
  return xs[n / 2];
}

static int equal(const asp_glibc_census *c, const struct mallinfo2 *m) {
  return c->complete && c->ordblks == m->ordblks && c->smblks == m->smblks && c->fordblks == m->fordblks && c->fsmblks == m->fsmblks &&
         c->arena == m->arena && c->keepcost == m->keepcost;
}

int main(int argc, char **argv) {
  if (argc < 5) return 2;
  long n = atol(argv[2]);
  int reps = atoi(argv[4]);
  if (n <= 0 || reps <= 0 || reps > 1000) return 2;
  unsigned seed = 12345;
  if (strcmp(argv[1], "churn") == 0) {
    int slots_n = atoi(argv[3]);
    void **slots = calloc((size_t)slots_n, sizeof(void *));
    for (long i = 0; i < n; i++) {
      int slot = rand_r(&seed) % slots_n;
      free(slots[slot]);
      slots[slot] = malloc(16 + (size_t)(rand_r(&seed) % 4080));
      memset(slots[slot], 1, 16);
    }
  } else {
    void **blocks = malloc((size_t)n * sizeof(void *));
    for (long i = 0; i < n; i++) blocks[i] = malloc(16 + (size_t)(rand_r(&seed) % 497));
    for (long i = 0; i < n; i += 2) free(blocks[i]);
  }
  double *pipe_us = malloc(sizeof(double) * (size_t)reps), *vm_us = malloc(sizeof(double) * (size_t)reps), *mallinfo_us = malloc(sizeof(double) * (size_t)reps);
  int pipe_equal = 1, vm_equal = 1;
  asp_glibc_census census;
  for (int r = 0; r < reps; r++) {
    double t = now_us();
    if (asp_glibc_census_take_with(&census, (size_t)1e9, ASP_CENSUS_READ_PIPE) != 0) return 3;
    pipe_us[r] = now_us() - t;
    t = now_us();
    struct mallinfo2 m = mallinfo2();
    mallinfo_us[r] = now_us() - t;
    pipe_equal &= equal(&census, &m);
    t = now_us();
    if (asp_glibc_census_take_with(&census, (size_t)1e9, ASP_CENSUS_READ_VM) != 0) return 3;
    vm_us[r] = now_us() - t;
    vm_equal &= equal(&census, &m);
  }
  size_t listed = asp_glibc_census_listed(&census);
  printf("{\"shape\":\"%s\",\"n\":%ld,\"listedChunks\":%zu,\"arenas\":%zu,\"reps\":%d,\"pipeUs\":%.1f,\"vmUs\":%.1f,\"mallinfo2Us\":%.1f,"
         "\"pipeEqualsMallinfo2\":%s,\"vmEqualsMallinfo2\":%s}\n",
         argv[1], n, listed, census.arenas, reps, median_of(pipe_us, reps), median_of(vm_us, reps), median_of(mallinfo_us, reps),
         pipe_equal ? "true" : "false", vm_equal ? "true" : "false");
  return 0;
}
