/* Benchmark workload: random-size malloc/free (16 B - 4 KiB, a 4096-slot working set).
     malloc_loop SECONDS        runs for SECONDS of wall time
     malloc_loop 0 OPS          runs exactly OPS operations (a fixed amount of work)
   Prints "OPS CPU_NS WALL_NS": operations done, CPU time of the whole process (every thread,
   so the agent's thread too: CLOCK_PROCESS_CPUTIME_ID) and wall time, both in ns.
   Built by run.js with gcc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3;
  unsigned long limit = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
  void *slots[4096] = {0};
  unsigned seed = 12345;
  unsigned long ops = 0;
  long long wall0 = ns(CLOCK_MONOTONIC), cpu0 = ns(CLOCK_PROCESS_CPUTIME_ID);
  long long end = wall0 + (long long)(seconds * 1e9);
  while (limit > 0 ? ops < limit : ns(CLOCK_MONOTONIC) < end) {
    for (int i = 0; i < 1000; i++) {
      int slot = rand_r(&seed) % 4096;
      free(slots[slot]);
      size_t size = 16 + (size_t)(rand_r(&seed) % 4080);
      slots[slot] = malloc(size);
      memset(slots[slot], 1, 16);
      ops++;
    }
  }
  long long cpu = ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = ns(CLOCK_MONOTONIC) - wall0;
  printf("%lu %lld %lld\n", ops, cpu, wall);
  return 0;
}
