#define _GNU_SOURCE
#include "process_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A /proc/self file kept open for pread. A pread on a shared fd with an explicit offset is safe
   from several threads, so the per-call path is one atomic load of the fd: no lock, no getpid().
   The mutex only guards opening.

   After fork() the inherited fd still reads the parent's numbers (/proc/self was resolved to the
   parent's pid at open). A pthread_atfork child handler closes it, so the child's next read opens
   its own. That used to be a getpid() + lock/unlock on every read: ~0.2 us of a ~1.4 us statm
   read on this kind of host (scripts/bench/RESULTS.md). The handler does not run for a child made
   by a raw clone() that bypasses glibc's fork(); such a child would read its parent's figures. */
typedef struct {
  const char *path;
  int fd;
  pthread_mutex_t lock;
} kept_file;

static kept_file statm_file = {"/proc/self/statm", -1, PTHREAD_MUTEX_INITIALIZER};
static kept_file status_file = {"/proc/self/status", -1, PTHREAD_MUTEX_INITIALIZER};
static kept_file *const kept_files[] = {&statm_file, &status_file};

/* Runs in the child of fork(), single-threaded: the parent's fds are closed (they are this
   process's copies, ours to close) and the locks re-initialized, in case another thread of the
   parent held one while it was opening. */
static void reset_kept_files_in_child(void) {
  for (size_t i = 0; i < sizeof(kept_files) / sizeof(kept_files[0]); i++) {
    kept_file *file = kept_files[i];
    if (file->fd >= 0) close(file->fd);
    file->fd = -1;
    pthread_mutex_init(&file->lock, NULL);
  }
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_kept_files_in_child); }

static int kept_fd(kept_file *file) {
  int fd = __atomic_load_n(&file->fd, __ATOMIC_ACQUIRE);
  if (fd >= 0) return fd;
  /* Registered before the first open, so no fd is ever open without the handler. */
  pthread_once(&atfork_once, register_atfork);
  pthread_mutex_lock(&file->lock);
  fd = file->fd;
  if (fd < 0) {
    fd = open(file->path, O_RDONLY | O_CLOEXEC);
    __atomic_store_n(&file->fd, fd, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&file->lock);
  return fd;
}

static ssize_t read_kept(kept_file *file, char *buf, size_t cap) {
  int fd = kept_fd(file);
  if (fd < 0) return -1;
  ssize_t n;
  do {
    n = pread(fd, buf, cap - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  buf[n] = '\0';
  return n;
}

int asp_read_statm(asp_statm *out) {
  char buf[256];
  if (read_kept(&statm_file, buf, sizeof(buf)) <= 0) return -1;
  return asp_parse_statm(buf, out);
}

int asp_parse_statm(const char *text, asp_statm *out) {
  long long size = 0, resident = 0, shared = 0;
  if (sscanf(text, "%lld %lld %lld", &size, &resident, &shared) != 3) return -1;
  out->size_pages = size;
  out->resident_pages = resident;
  out->shared_pages = shared;
  return 0;
}

/* What follows "key:" on the line starting with key, or NULL. */
static const char *field_value(const char *text, const char *key) {
  size_t key_len = strlen(key);
  for (const char *line = text; line != NULL && *line != '\0';) {
    if (strncmp(line, key, key_len) == 0 && line[key_len] == ':') return line + key_len + 1;
    line = strchr(line, '\n');
    if (line != NULL) line++;
  }
  return NULL;
}

/* Up to `cap` whole numbers from the start of a value, stopping at its line's end; how many. */
static int field_numbers(const char *value, int64_t *out, int cap) {
  int count = 0;
  while (value != NULL && count < cap) {
    while (*value == ' ' || *value == '\t') value++;
    if (*value < '0' || *value > '9') break;
    char *end = NULL;
    long long number = strtoll(value, &end, 10);
    if (end == value || number < 0) break;
    out[count++] = number;
    value = end;
  }
  return count;
}

static int64_t field_kb(const char *text, const char *key) {
  /* Lines look like "RssAnon:\t    1234 kB"; match the key only at a line start. */
  int64_t value;
  return field_numbers(field_value(text, key), &value, 1) == 1 ? value : -1;
}

/* "Uid:\t0\t0\t0\t0": all four, or -1 in each. */
static void field_ids(const char *text, const char *key, int64_t ids[4]) {
  if (field_numbers(field_value(text, key), ids, 4) != 4) ids[0] = ids[1] = ids[2] = ids[3] = -1;
}

void asp_parse_status(const char *text, asp_status *out) {
  out->vm_hwm_kb = field_kb(text, "VmHWM");
  out->vm_rss_kb = field_kb(text, "VmRSS");
  out->rss_anon_kb = field_kb(text, "RssAnon");
  out->rss_file_kb = field_kb(text, "RssFile");
  out->rss_shmem_kb = field_kb(text, "RssShmem");
  out->vm_swap_kb = field_kb(text, "VmSwap");
  out->threads = field_kb(text, "Threads");
  field_ids(text, "Uid", out->uids);
  field_ids(text, "Gid", out->gids);
  /* One more than the cap, to tell a full list from a longer one. */
  int64_t groups[ASP_STATUS_MAX_GROUPS + 1];
  const char *value = field_value(text, "Groups");
  int count = value == NULL ? -1 : field_numbers(value, groups, ASP_STATUS_MAX_GROUPS + 1);
  out->n_groups = count > ASP_STATUS_MAX_GROUPS ? -1 : count;
  for (int i = 0; i < out->n_groups; i++) out->groups[i] = (uint32_t)groups[i];
}

int asp_read_status(asp_status *out) {
  /* status is ~1.5 KiB on Linux 6.x; 4 KiB leaves room for long Cpus_allowed lists. */
  char buf[4096];
  if (read_kept(&status_file, buf, sizeof(buf)) <= 0) return -1;
  asp_parse_status(buf, out);
  return 0;
}

int64_t asp_page_size(void) {
  static int64_t page = 0;
  if (page == 0) page = (int64_t)sysconf(_SC_PAGESIZE);
  return page;
}

int64_t asp_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
