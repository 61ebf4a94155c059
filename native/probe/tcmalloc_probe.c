#define _GNU_SOURCE
#include "tcmalloc_probe.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static struct {
  int (*get_numeric)(const char *, size_t *);
  void (*release_free_memory)(void);
  void (*get_stats)(char *, int);
  const char *(*version)(int *, int *, const char **);
} tc;
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static void bind_body(void) {
  tc.get_numeric = (int (*)(const char *, size_t *))dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty");
  tc.release_free_memory = (void (*)(void))dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory");
  tc.get_stats = (void (*)(char *, int))dlsym(RTLD_DEFAULT, "MallocExtension_GetStats");
  tc.version = (const char *(*)(int *, int *, const char **))dlsym(RTLD_DEFAULT, "tc_version");
}

static int bound(void) {
  pthread_once(&bind_once, bind_body);
  return tc.get_numeric != NULL;
}

int asp_tc_property(const char *name, size_t *value) {
  if (!bound()) return -1;
  return tc.get_numeric(name, value) ? 1 : 0;
}

int asp_tc_release_free_memory(void) {
  if (!bound() || tc.release_free_memory == NULL) return -1;
  tc.release_free_memory();
  return 0;
}

int asp_tc_stats_text(char *out, int cap) {
  if (!bound() || tc.get_stats == NULL || cap <= 0) return -1;
  out[0] = '\0';
  tc.get_stats(out, cap);
  out[cap - 1] = '\0';
  return 0;
}

const char *asp_tc_version(void) {
  if (!bound() || tc.version == NULL) return "";
  int major = 0, minor = 0;
  const char *patch = NULL;
  const char *text = tc.version(&major, &minor, &patch);
  return text != NULL ? text : "";
}

int asp_tc_read_summary(asp_tc_summary *out) {
  if (!bound()) return -1;
  if (!tc.get_numeric("generic.current_allocated_bytes", &out->current_allocated_bytes)) return 0;
  if (!tc.get_numeric("generic.heap_size", &out->heap_size)) return 0;
  if (!tc.get_numeric("tcmalloc.pageheap_free_bytes", &out->pageheap_free_bytes)) return 0;
  if (!tc.get_numeric("tcmalloc.pageheap_unmapped_bytes", &out->pageheap_unmapped_bytes)) return 0;
  return 1;
}
