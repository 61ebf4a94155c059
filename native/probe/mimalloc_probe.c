#define _GNU_SOURCE
#include "mimalloc_probe.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

static struct {
  void (*process_info)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *);
  void (*collect)(bool);
  int (*version)(void);
} mi;
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static void bind_body(void) {
  mi.process_info = (void (*)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *,
                              size_t *))dlsym(RTLD_DEFAULT, "mi_process_info");
  mi.collect = (void (*)(bool))dlsym(RTLD_DEFAULT, "mi_collect");
  mi.version = (int (*)(void))dlsym(RTLD_DEFAULT, "mi_version");
}

int asp_mi_process_info(asp_mi_info *out) {
  pthread_once(&bind_once, bind_body);
  if (mi.process_info == NULL) return -1;
  mi.process_info(&out->elapsed_msecs, &out->user_msecs, &out->system_msecs, &out->current_rss,
                  &out->peak_rss, &out->current_commit, &out->peak_commit, &out->page_faults);
  return 0;
}

int asp_mi_collect(int force) {
  pthread_once(&bind_once, bind_body);
  if (mi.collect == NULL) return -1;
  mi.collect(force != 0);
  return 0;
}

int asp_mi_version(void) {
  pthread_once(&bind_once, bind_body);
  return mi.version != NULL ? mi.version() : -1;
}
