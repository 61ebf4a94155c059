/* The physical floor of a sample: asp_sample() from the very probe sources the addon links
   (every .c file in native/probe/), called from plain C with no Node around it. run.js compiles
   this at bench time and runs it around node-bench.js under the same allocator (LD_PRELOAD).

   A floor is only a floor for the same work. mallinfo2 walks every glibc arena and free chunk,
   the jemalloc epoch merges every initialized arena (~9 us each, limits.md §2), getrusage(SELF)
   and mi_process_info sum over threads, tcmalloc walks thread caches. So the harness first
   rebuilds the Node process's shape, as run.js measured it there:
     --threads T        T threads in all (T-1 idle ones)
     --arenas A         A allocator arenas: A-1 of the idle threads malloc once (glibc gives each
                        its own arena; jemalloc hands new threads fresh arenas), then jemalloc is
                        topped up through thread.arena if it still has fewer
     --free-chunks K    glibc: at least K free chunks that cannot coalesce, as mallinfo2 counts
                        them (ordblks + smblks)
     --batches B        timed batches per mode (default 201)
   and prints one JSON line: the shape it reached and the median ns per asp_sample call, with
   and without the allocator read. Batches last >= 20 us so clock reads are amortised; the two
   modes alternate batch by batch so they share the machine's noise (limits.md "Noise"). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator_detect.h"
#include "glibc_probe.h"
#include "jemalloc_probe.h"
#include "process_probe.h"
#include "sample.h"

#define MIN_BATCH_NS 20000
#define MAX_BATCHES 10001
#define WARM_UP_CALLS 200

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static int started = 0;

/* An extra thread: optionally mallocs once (its arena or thread cache), then waits forever. */
static void *idle_thread(void *does_malloc) {
  if (does_malloc != NULL) {
    void *volatile block = malloc(64);
    free(block);
  }
  pthread_mutex_lock(&idle_lock);
  started++;
  pthread_cond_broadcast(&idle_cond);
  for (;;) pthread_cond_wait(&idle_cond, &idle_lock);
  return NULL;
}

static void spawn_threads(int extra, int mallocing) {
  for (int i = 0; i < extra; i++) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, idle_thread, i < mallocing ? (void *)1 : NULL) != 0) {
      fprintf(stderr, "floor: pthread_create failed\n");
      exit(1);
    }
    pthread_attr_destroy(&attr);
  }
  pthread_mutex_lock(&idle_lock);
  while (started < extra) pthread_cond_wait(&idle_cond, &idle_lock);
  pthread_mutex_unlock(&idle_lock);
}

/* arena.<i>.initialized is the ctl copy jemalloc refreshes at each epoch (ctl.c ctl_refresh), so
   the epoch is advanced first. */
static int je_initialized_arenas(void) {
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  if (asp_je_mallctl("epoch", &epoch, &len, &epoch, sizeof(epoch)) != 0) return -1;
  unsigned narenas = 0;
  len = sizeof(narenas);
  if (asp_je_mallctl("arenas.narenas", &narenas, &len, NULL, 0) != 0) return -1;
  int count = 0;
  for (unsigned i = 0; i < narenas; i++) {
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.initialized", i);
    unsigned char initialized = 0;
    len = sizeof(initialized);
    if (asp_je_mallctl(name, &initialized, &len, NULL, 0) == 0 && initialized) count++;
  }
  return count;
}

/* Writing thread.arena initializes that arena (jemalloc ctl.c thread_arena_ctl -> arena_get(..,
   init_if_missing=true)); one allocation there gives it the stats an ordinary arena has. */
static void je_top_up_arenas(int wanted) {
  unsigned home = 0, narenas = 0;
  size_t len = sizeof(home);
  if (asp_je_mallctl("thread.arena", &home, &len, NULL, 0) != 0) return;
  len = sizeof(narenas);
  if (asp_je_mallctl("arenas.narenas", &narenas, &len, NULL, 0) != 0) return;
  for (unsigned i = 0; i < narenas && je_initialized_arenas() < wanted; i++) {
    if (asp_je_mallctl("thread.arena", NULL, NULL, &i, sizeof(i)) != 0) continue;
    void *volatile block = malloc(64);
    free(block);
  }
  asp_je_mallctl("thread.arena", NULL, NULL, &home, sizeof(home));
}

/* malloc_info writes one <heap nr="i"> element per arena. */
static int glibc_arenas(void) {
  size_t len = 0;
  char *xml = asp_glibc_malloc_info(&len);
  if (xml == NULL) return -1;
  int count = 0;
  for (const char *at = strstr(xml, "<heap nr="); at != NULL; at = strstr(at + 1, "<heap nr=")) count++;
  free(xml);
  return count;
}

static long glibc_free_chunks(void) {
  asp_mallinfo2 m;
  if (asp_glibc_mallinfo2(&m) < 0) return -1;
  return (long)(m.ordblks + m.smblks);
}

/* Pairs (hole, keeper) of 1040..1488 B: above the tcache's largest size (1032 B), so a freed hole
   goes straight to the bins mallinfo2 walks instead of vanishing into the tcache. The holes are
   freed after all keepers exist, so none is reused or coalesces; the keepers stay allocated for
   the life of the harness. The chunks are larger than most of Node's, but at the few hundred
   free chunks of a healthy heap the walk costs the same per chunk (limits.md §1a). */
static void glibc_make_free_chunks(long wanted) {
  long missing = wanted - glibc_free_chunks();
  if (missing <= 0) return;
  void **holes = calloc((size_t)missing, sizeof(void *));
  if (holes == NULL) return;
  for (long i = 0; i < missing; i++) {
    size_t size = 1040 + (size_t)(i % 29) * 16;
    holes[i] = malloc(size);
    void *volatile keeper = malloc(size);
    (void)keeper;
  }
  for (long i = 0; i < missing; i++) free(holes[i]);
  free(holes);
}

static int64_t now_ns(void) { return asp_monotonic_ns(); }

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Calls per batch so that one batch lasts at least MIN_BATCH_NS, after a warm-up: the first
   calls open /proc/self/statm, resolve symbols and MIBs. */
static long calibrate(asp_allocator_kind kind, int flags, double *slots) {
  for (int i = 0; i < WARM_UP_CALLS; i++) asp_sample(kind, flags, slots);
  long calls = 1;
  for (;;) {
    int64_t start = now_ns();
    for (long i = 0; i < calls; i++) asp_sample(kind, flags, slots);
    if (now_ns() - start >= MIN_BATCH_NS || calls >= (1L << 20)) return calls;
    calls *= 2;
  }
}

static double batch_ns_per_call(asp_allocator_kind kind, int flags, double *slots, long calls) {
  int64_t start = now_ns();
  for (long i = 0; i < calls; i++) asp_sample(kind, flags, slots);
  return (double)(now_ns() - start) / (double)calls;
}

int main(int argc, char **argv) {
  int threads = 1, arenas = 1, batches = 201;
  long free_chunks = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--arenas") == 0) arenas = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--free-chunks") == 0) free_chunks = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--batches") == 0) batches = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "floor: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1) threads = 1;
  if (arenas < 1) arenas = 1;
  if (batches < 1 || batches > MAX_BATCHES) batches = 201;

  asp_allocator allocator;
  asp_detect_allocator(&allocator);
  asp_allocator_kind kind = allocator.kind;

  int extra = threads - 1;
  int mallocing = kind == ASP_ALLOCATOR_GLIBC || kind == ASP_ALLOCATOR_JEMALLOC ? arenas - 1 : extra;
  spawn_threads(extra, mallocing < extra ? mallocing : extra);
  if (kind == ASP_ALLOCATOR_JEMALLOC) je_top_up_arenas(arenas);
  if (kind == ASP_ALLOCATOR_GLIBC && free_chunks > 0) glibc_make_free_chunks(free_chunks);

  static double slots[ASP_SAMPLE_SLOT_COUNT];
  static double with_allocator[MAX_BATCHES], without_allocator[MAX_BATCHES];
  long calls_with = calibrate(kind, ASP_SAMPLE_WITH_ALLOCATOR, slots);
  long calls_without = calibrate(kind, 0, slots);
  for (int b = 0; b < batches; b++) {
    with_allocator[b] = batch_ns_per_call(kind, ASP_SAMPLE_WITH_ALLOCATOR, slots, calls_with);
    without_allocator[b] = batch_ns_per_call(kind, 0, slots, calls_without);
  }
  qsort(with_allocator, (size_t)batches, sizeof(double), compare_double);
  qsort(without_allocator, (size_t)batches, sizeof(double), compare_double);

  asp_sample(kind, ASP_SAMPLE_WITH_ALLOCATOR | ASP_SAMPLE_WITH_STATUS, slots);
  printf("{\"allocator\":\"%s\",\"threads\":%.0f,\"jemallocArenas\":%d,\"glibcArenas\":%d,\"glibcFreeChunks\":%ld,"
         "\"allocatorStatus\":%.0f,\"batches\":%d,\"callsPerBatch\":%ld,"
         "\"sampleNs\":%.1f,\"sampleP10Ns\":%.1f,\"sampleP90Ns\":%.1f,\"sampleNoAllocatorNs\":%.1f}\n",
         asp_allocator_name(kind), slots[ASP_SLOT_STATUS_THREADS],
         kind == ASP_ALLOCATOR_JEMALLOC ? je_initialized_arenas() : -1,
         kind == ASP_ALLOCATOR_GLIBC ? glibc_arenas() : -1,
         kind == ASP_ALLOCATOR_GLIBC ? glibc_free_chunks() : -1L, slots[ASP_SLOT_ALLOCATOR_STATUS], batches,
         calls_with, with_allocator[batches / 2], with_allocator[batches / 10],
         with_allocator[batches - 1 - batches / 10], without_allocator[batches / 2]);
  return 0;
}
