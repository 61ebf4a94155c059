/* Control for the agent benchmark: a preloaded library that only starts one idle thread, as
   the agent does (its thread blocks in accept; this one in pause). With it, the cost of the host
   merely having a second thread (glibc's malloc leaves its single-thread fast paths once a
   thread is created) is told apart from the agent's own work. Built by run.js with gcc. */
#include <pthread.h>
#include <unistd.h>

static void *idle(void *unused) {
  (void)unused;
  for (;;) pause();
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  pthread_t thread;
  if (pthread_create(&thread, NULL, idle, NULL) == 0) pthread_detach(thread);
}
