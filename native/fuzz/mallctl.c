/* libFuzzer target: mallctl name and value handling (native/probe/jemalloc_probe.c) against the
   real jemalloc (Debian's libjemalloc2, linked by scripts/fuzz: a dlopen fails for want of static
   TLS; asp_je_bind finds mallctl by dlsym as it does in a preloaded process, while the statically
   linked ASan runtime comes first and stays the process's malloc).
   The C side does not parse names itself: it passes them to jemalloc's ctl.c name lookup and
   decodes the width jemalloc reports (asp_je_read_any), or encodes a value of 1, 4 or 8 bytes
   (asp_je_write_sized). Input: byte 0 picks the operation, the rest is the name (read) or an
   index into a list of harmless writable names, a size byte and eight value bytes (write).
   Invariants: a successful read has a width of 1 to 8 bytes and a value that fits it; a write
   with another width, or a 1-byte (bool) write of anything but 0 or 1, is EINVAL without calling
   jemalloc. Found by this target: thread.tcache.enabled written with 2 and then 0 crashes
   jemalloc 5.3 (replay: MALLCTL_TRACE=1, then the calls in a plain jemalloc process).
   Left out, on purpose: reads of *.create (each creates an arena or tcache: the run would measure
   jemalloc's limits, not our code) and writes to arbitrary names (max_background_threads = 0
   divides by zero inside jemalloc, test/allocators/jemalloc-mallctl.ts; arena hooks take
   pointers). lib/allocators/jemalloc-mallctl.ts validates names and values before they reach C,
   and test/allocators/jemalloc.ts fuzzes that layer in a real jemalloc process. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../probe/jemalloc_probe.h"

#define NAME_MAX_BYTES 128

/* MALLCTL_TRACE=1 prints every call on stderr: a crash that depends on earlier calls (jemalloc
   keeps state between them) can then be replayed in a plain jemalloc process. */
static int trace;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  trace = getenv("MALLCTL_TRACE") != NULL;
  if (asp_je_bind() != 0) {
    fprintf(stderr, "mallctl fuzz: no mallctl in the process (link libjemalloc.so.2)\n");
    exit(1);
  }
  return 0;
}

static const char *const writable[] = {
    "epoch", "thread.tcache.enabled", "arenas.dirty_decay_ms", "arenas.muzzy_decay_ms",
    "arena.0.dirty_decay_ms", "arena.0.muzzy_decay_ms", "thread.arena", "no.such.name",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t op = data[0] % 2;
  data++;
  size--;
  if (op == 0) {
    char name[NAME_MAX_BYTES + 1];
    size_t n = size < NAME_MAX_BYTES ? size : NAME_MAX_BYTES;
    memcpy(name, data, n);
    name[n] = '\0';
    if (strstr(name, "create") != NULL) return 0;
    uint64_t bits = 0;
    size_t width = 0;
    if (trace) fprintf(stderr, "R %s\n", name);
    int rc = asp_je_read_any(name, &bits, &width);
    if (rc == 0) {
      if (width < 1 || width > 8) abort();
      if (width < 8 && (bits >> (8 * width)) != 0) abort();
    }
  } else {
    if (size < 10) return 0;
    const char *name = writable[data[0] % (sizeof(writable) / sizeof(writable[0]))];
    size_t width = data[1] % 10;
    uint64_t bits;
    memcpy(&bits, data + 2, 8);
    if (trace) fprintf(stderr, "W %s %zu %llu\n", name, width, (unsigned long long)bits);
    /* thread.arena beyond arenas.narenas is refused by jemalloc (EFAULT); keep it in range so the
       write path is exercised, not only the refusal. */
    if (strcmp(name, "thread.arena") == 0) bits %= 4;
    int rc = asp_je_write_sized(name, bits, width);
    if (width != 1 && width != 4 && width != 8 && rc != EINVAL) abort();
    if (width == 1 && bits > 1 && rc != EINVAL) abort(); /* a bool is 0 or 1 (jemalloc_probe.c) */
  }
  return 0;
}
