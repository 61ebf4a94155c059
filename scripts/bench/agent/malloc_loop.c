/* Benchmark workload: random-size malloc/free (16 B - 4 KiB, a 4096-slot working set) for
   SECONDS, then prints the number of operations. Built by run.js with gcc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3;
  void *slots[4096] = {0};
  unsigned seed = 12345;
  unsigned long ops = 0;
  double end = now() + seconds;
  while (now() < end) {
    for (int i = 0; i < 1000; i++) {
      int slot = rand_r(&seed) % 4096;
      free(slots[slot]);
      size_t size = 16 + (size_t)(rand_r(&seed) % 4080);
      slots[slot] = malloc(size);
      memset(slots[slot], 1, 16);
      ops++;
    }
  }
  printf("%lu\n", ops);
  return 0;
}
