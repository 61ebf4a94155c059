#define _GNU_SOURCE
#include "glibc_probe.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>

/* glibc < 2.33's struct mallinfo: int fields that wrap above 2 GiB (man mallinfo, BUGS). */
typedef struct {
  int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} legacy_mallinfo;

int asp_glibc_mallinfo2(asp_mallinfo2 *out) {
  /* dlsym per call costs ~100 ns; caching would need a once-guard for the same gain. Resolved
     lazily so a musl process never calls a missing symbol. */
  static asp_mallinfo2 (*mallinfo2_fn)(void) = NULL;
  static legacy_mallinfo (*mallinfo_fn)(void) = NULL;
  static int resolved = 0;
  if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) {
    mallinfo2_fn = (asp_mallinfo2(*)(void))dlsym(RTLD_DEFAULT, "mallinfo2");
    mallinfo_fn = (legacy_mallinfo(*)(void))dlsym(RTLD_DEFAULT, "mallinfo");
    __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
  }
  if (mallinfo2_fn != NULL) {
    *out = mallinfo2_fn();
    return 0;
  }
  if (mallinfo_fn != NULL) {
    legacy_mallinfo m = mallinfo_fn();
    out->arena = (unsigned)m.arena;
    out->ordblks = (unsigned)m.ordblks;
    out->smblks = (unsigned)m.smblks;
    out->hblks = (unsigned)m.hblks;
    out->hblkhd = (unsigned)m.hblkhd;
    out->usmblks = (unsigned)m.usmblks;
    out->fsmblks = (unsigned)m.fsmblks;
    out->uordblks = (unsigned)m.uordblks;
    out->fordblks = (unsigned)m.fordblks;
    out->keepcost = (unsigned)m.keepcost;
    return 1;
  }
  return -1;
}

/* Where malloc_info prints: one stream, opened on first use and kept for the life of the
   process, over an mmap'd buffer of our own.

   Why kept: any stream opened per call (fmemopen, open_memstream, fdopen) mallocs its FILE (and
   fmemopen its cookie) just before the walk and frees them just after. So a mallinfo2() taken
   before or after saw as free one or two chunks that malloc_info, during the walk, saw in use:
   its free counts came out up to 2 chunks / ~1 KiB short of mallinfo2's, and the figures could
   never be compared exactly (issue 2). Kept open, the FILE is one long-lived allocation that
   both see in use, and a malloc_info call allocates nothing before or during the walk.
   Why fopencookie and _IONBF: the cookie's write appends to our buffer and never allocates; an
   unbuffered stream formats through a stack buffer (glibc vfprintf's buffered_vfprintf) instead
   of mallocing a stdio buffer on first write. */
typedef struct {
  char *buf;
  size_t cap;
  size_t len;
  int overflowed;
} info_sink;

static info_sink sink;
static FILE *sink_stream;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t sink_write(void *cookie, const char *data, size_t size) {
  info_sink *out = cookie;
  size_t room = out->cap - out->len;
  size_t n = size <= room ? size : room;
  memcpy(out->buf + out->len, data, n);
  out->len += n;
  if (n < size) out->overflowed = 1;
  return (ssize_t)size; /* all taken: a short write would only make stdio retry or fail */
}

/* In the child of fork() (single-threaded), a lock another thread held at the fork is free. */
static void reset_sink_lock_in_child(void) { pthread_mutex_init(&sink_lock, NULL); }

static int sink_grow(size_t cap) {
  char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return -1;
  if (sink.buf != NULL) munmap(sink.buf, sink.cap);
  sink.buf = buf;
  sink.cap = cap;
  return 0;
}

/* Called with sink_lock held. The only allocation of this file's malloc_info path, once. */
static void register_sink_atfork(void) { pthread_atfork(NULL, NULL, reset_sink_lock_in_child); }

static FILE *sink_open(void) {
  if (sink_stream != NULL) return sink_stream;
  /* 0.6-3.8 KB per arena is typical (limits.md §1a): 256 KiB fits ~70 arenas before growing. */
  if (sink.buf == NULL && sink_grow(256 * 1024) != 0) return NULL;
  cookie_io_functions_t io = {.read = NULL, .write = sink_write, .seek = NULL, .close = NULL};
  FILE *stream = fopencookie(&sink, "w", io);
  if (stream == NULL) return NULL;
  setvbuf(stream, NULL, _IONBF, 0);
  static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
  pthread_once(&atfork_once, register_sink_atfork);
  sink_stream = stream;
  return stream;
}

char *asp_glibc_malloc_info(size_t *len) {
  int (*malloc_info_fn)(int, FILE *) = (int (*)(int, FILE *))dlsym(RTLD_DEFAULT, "malloc_info");
  if (malloc_info_fn == NULL) return NULL;
  char *text = NULL;
  pthread_mutex_lock(&sink_lock);
  FILE *stream = sink_open();
  /* The buffer grows until the output fits, up to 64 MiB; growing maps, it never mallocs. */
  for (int tries = 0; stream != NULL && tries < 4; tries++) {
    sink.len = 0;
    sink.overflowed = 0;
    /* options must be 0 (glibc malloc.c __malloc_info: anything else is EINVAL). */
    int rc = malloc_info_fn(0, stream);
    if (rc != 0 || ferror(stream)) {
      clearerr(stream);
      break;
    }
    if (!sink.overflowed) {
      /* Only now, with the walk done, copy into a malloc'd string for the caller. */
      text = malloc(sink.len + 1);
      if (text != NULL) {
        memcpy(text, sink.buf, sink.len);
        text[sink.len] = '\0';
        *len = sink.len;
      }
      break;
    }
    if (sink_grow(sink.cap * 4) != 0) break;
  }
  pthread_mutex_unlock(&sink_lock);
  return text;
}

int asp_glibc_malloc_trim(size_t pad) {
  int (*trim_fn)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "malloc_trim");
  if (trim_fn == NULL) return -1;
  return trim_fn(pad) ? 1 : 0;
}
