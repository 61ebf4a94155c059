/*
 * glibc malloc's free lists, counted without its locks.
 *
 * Why: mallinfo2 walks every free chunk of an arena while holding that arena's lock, ~150 ns per
 * chunk (references/limits.md §1): 15 ms at 1e5 free chunks, 150 ms at 1e6, during which every
 * thread that needs the arena waits. Nothing cheap in glibc's API says how many free chunks there
 * are, so a monitor could not know what its next mallinfo2 would cost (issue 3's glibc guard).
 * This census walks the same lists mallinfo2 walks (glibc malloc.c int_mallinfo), without the
 * lock, so a caller can decide first.
 *
 * How the arenas are found, with no debug symbols: main_arena is a static struct malloc_state in
 * libc's data segment, and an empty bin is a list head whose fd and bk both point at the head
 * itself (bin_at(av, i) = &av->bins[2(i-1)] - 16: malloc.c "bin_at"). Most of the 127 bins are
 * empty in any process (large bins especially), so the segment is scanned once for the position
 * where the most bins self-reference; that is main_arena. Every other arena is on its `next` ring.
 *
 * Why racing the owner is safe: every read of memory the allocator may unmap (a heap trimmed by
 * another thread) is made by the kernel on our behalf, which answers EFAULT instead of faulting:
 * a writev of it into a pipe of our own, or process_vm_readv on our own pid (read_through_pipe
 * says why both). Every walk is bounded (max_chunks, a ring of at most MAX_ARENAS). A list that
 * changes under the walk can only make the counts inexact; `complete` then says 0. Nothing here
 * writes the allocator's memory, takes its locks or calls malloc (buffers come from mmap), so the
 * census can run while the host allocates, from any thread.
 *
 * The layout below is glibc's struct malloc_state for 64-bit targets from 2.27 (have_fastchunks
 * became an int) with safe-linking of fastbin pointers from 2.32 (malloc.c PROTECT_PTR); the
 * version gate accepts 2.32 through 2.41, the releases read for it.
 */
#define _GNU_SOURCE
#include "glibc_census.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* struct malloc_state, 64-bit (malloc.c): mutex, flags, have_fastchunks (int each, then 4 bytes of
   padding), fastbinsY[NFASTBINS = 10], top, last_remainder, bins[NBINS * 2 - 2 = 254],
   binmap[4] (unsigned int), next, next_free, attached_threads, system_mem, max_system_mem. */
enum {
  OFF_MUTEX = 0,
  OFF_FLAGS = 4,
  OFF_HAVE_FASTCHUNKS = 8,
  OFF_FASTBINS = 16,
  NFASTBINS = 10,
  OFF_TOP = 96,
  OFF_BINS = 112,
  NBINS = 128, /* bins 1..127 are lists: 1 unsorted, 2..63 small, 64..126 large (bin 127 unused but walked by int_mallinfo) */
  OFF_NEXT = 2160,
  OFF_SYSTEM_MEM = 2184,
  OFF_MAX_SYSTEM_MEM = 2192,
  ARENA_SIZE = 2200,
  /* A chunk: prev_size, size, fd, bk at 0, 8, 16, 24 (chunk_header below reads size, fd, bk). */
  CHUNK_SIZE_FIELD = 8,
  CHUNK_FD = 16,
  SIZE_BITS = 7, /* PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA */
  CHUNK_ALIGN = 16,
  MIN_CHUNK = 32, /* MINSIZE: the smallest chunk on 64-bit */
  /* One list per fastbin and per bin, for each arena. */
  LISTS_PER_ARENA = NFASTBINS + NBINS - 1,
  /* glibc caps arenas at 8 per core (arena_test/ARENA_MAX); a ring longer than this is not one. */
  MAX_ARENAS = 1024,
  /* process_vm_readv takes at most IOV_MAX (1024) iovecs a side. */
  BATCH = 1024,
  /* Bytes read per list per round (see the walk), and the page a read never crosses. */
  WINDOW = 2048,
  /* What a list reads while its chunks lie far apart: the chunk's size, fd and bk. Every byte
     read costs its cache misses (a 2 KiB window per chunk made the census 3x slower on a heap
     whose lists jump from page to page, scripts/bench/RESULTS.md). */
  HEADER_WINDOW = 24,
  /* A pipe's default capacity (16 pages): the most one write of the pipe reader holds. */
  PIPE_SLICE = 65536,
  PAGE = 4096,
  /* A real main_arena has most of its 127 bins empty; a chance match in other data has few. */
  MIN_EMPTY_BINS = 16
};

#if UINTPTR_MAX == 0xffffffffffffffffu
#define CENSUS_LAYOUT_KNOWN 1
#else
#define CENSUS_LAYOUT_KNOWN 0
#endif

/* Sums saturate: a racing (or, in the fuzz target, fake) list can hold any bytes. */
static inline size_t add_sat(size_t a, size_t b) {
  size_t sum = a + b;
  return sum < a ? SIZE_MAX : sum;
}

static inline uintptr_t word_at(const unsigned char *buf, size_t offset) {
  uintptr_t value;
  memcpy(&value, buf + offset, sizeof value);
  return value;
}

/* Reads len bytes at addr of this process; 0 on success, else an errno (EFAULT: not mapped). */
static int safe_read(void *out, uintptr_t addr, size_t len) {
  struct iovec local = {out, len};
  struct iovec remote = {(void *)addr, len};
  ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  if (got == (ssize_t)len) return 0;
  return got < 0 ? errno : EFAULT;
}

static void *map_buffer(size_t len) {
  void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return buf == MAP_FAILED ? NULL : buf;
}

/* One arena's struct, read whole, and the checks a real malloc_state passes. */
static int read_arena(uintptr_t addr, unsigned char *arena) {
  if (addr == 0 || addr % sizeof(uintptr_t) != 0) return -1;
  if (safe_read(arena, addr, ARENA_SIZE) != 0) return -1;
  int mutex, flags, have_fastchunks;
  memcpy(&mutex, arena + OFF_MUTEX, sizeof mutex);
  memcpy(&flags, arena + OFF_FLAGS, sizeof flags);
  memcpy(&have_fastchunks, arena + OFF_HAVE_FASTCHUNKS, sizeof have_fastchunks);
  /* lowlevellock values 0-2; flags holds NONCONTIGUOUS_BIT (2) and ARENA_CORRUPTION_BIT (4). */
  if (mutex < 0 || mutex > 2 || flags < 0 || flags > 7 || have_fastchunks < 0 || have_fastchunks > 1) return -1;
  uintptr_t next = word_at(arena, OFF_NEXT);
  uintptr_t top = word_at(arena, OFF_TOP);
  if (next == 0 || next % sizeof(uintptr_t) != 0 || top == 0 || top % sizeof(uintptr_t) != 0) return -1;
  if (word_at(arena, OFF_SYSTEM_MEM) > word_at(arena, OFF_MAX_SYSTEM_MEM)) return -1;
  return 0;
}

static inline uintptr_t bin_head(uintptr_t arena, int bin) {
  return arena + OFF_BINS + (uintptr_t)(bin - 1) * 2 * sizeof(uintptr_t) - CHUNK_FD;
}

static inline int is_bin_head_of(uintptr_t arena, uintptr_t addr) {
  uintptr_t first = bin_head(arena, 1);
  return addr >= first && addr <= bin_head(arena, NBINS - 1) && (addr - first) % (2 * sizeof(uintptr_t)) == 0;
}

typedef struct {
  uintptr_t node;       /* the chunk to read next */
  uintptr_t head;       /* the bin's head (the walk ends there); 0 for a fastbin (ends at NULL) */
  uintptr_t arena;      /* the arena it belongs to, to tell its bin heads apart */
  uintptr_t system_mem; /* that arena's size: no free chunk in it is larger */
  uintptr_t window;     /* bytes to read around the next chunk: HEADER_WINDOW or WINDOW */
  uintptr_t backward;   /* 1: the window ends at the chunk's header (the list runs down in address) */
} walk_list;

/* What a chunk's header holds from its size field on: size, fd, bk. */
typedef struct {
  uintptr_t size, fd, bk;
} chunk_header;

/* The walk's memory: lists for WORKSPACE_ARENAS arenas, the iovecs and the windows of a round.
   Mapped once and kept (a census runs every sample: a fresh mapping costs its page faults each
   time, ~15 us), for one census at a time; a census that finds it taken (another thread's, or a
   fork's child whose parent held it) maps its own. Only the pages a census touched stay resident. */
enum {
  WORKSPACE_ARENAS = 16,
  WORKSPACE_LISTS = WORKSPACE_ARENAS * LISTS_PER_ARENA,
  WORKSPACE_LEN = WORKSPACE_LISTS * sizeof(walk_list) + BATCH * 2 * sizeof(struct iovec) + BATCH * WINDOW
};

typedef struct {
  unsigned char *mem;
  int kept;
} workspace;

static pthread_mutex_t kept_workspace_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *kept_workspace = NULL;

static int workspace_get(workspace *ws) {
  if (pthread_mutex_trylock(&kept_workspace_lock) == 0) {
    if (kept_workspace == NULL) kept_workspace = map_buffer(WORKSPACE_LEN);
    if (kept_workspace != NULL) {
      ws->mem = kept_workspace;
      ws->kept = 1;
      return 0;
    }
    pthread_mutex_unlock(&kept_workspace_lock);
  }
  ws->mem = map_buffer(WORKSPACE_LEN);
  ws->kept = 0;
  return ws->mem == NULL ? -1 : 0;
}

static void workspace_put(workspace *ws) {
  if (ws->kept) pthread_mutex_unlock(&kept_workspace_lock);
  else munmap(ws->mem, WORKSPACE_LEN);
}

static int seen_before(const uintptr_t *seen, size_t count, uintptr_t addr) {
  for (size_t i = 0; i < count; i++) {
    if (seen[i] == addr) return 1;
  }
  return 0;
}

/* Counts one chunk of `list` from its header. 1: the list goes on at *next; 0: it ended where it
   should; -1: it broke (a header or pointer no free chunk of this arena has: the list changed
   under the walk, so the census is no longer complete). */
static int census_step(const walk_list *list, const chunk_header *header, asp_glibc_census *out, uintptr_t *next) {
  uintptr_t size = header->size & ~(uintptr_t)SIZE_BITS;
  if (size < MIN_CHUNK || size % CHUNK_ALIGN != 0 || size > list->system_mem) {
    out->complete = 0;
    return -1;
  }
  out->fordblks = add_sat(out->fordblks, size);
  if (list->head == 0) {
    out->smblks++;
    out->fsmblks = add_sat(out->fsmblks, size);
    /* REVEAL_PTR: fd is stored xor'ed with its own address >> 12 (glibc >= 2.32). */
    *next = ((list->node + CHUNK_FD) >> 12) ^ header->fd;
    if (*next == 0) return 0;
  } else {
    out->ordblks++;
    *next = header->bk;
    if (*next == list->head) return 0;
    if (is_bin_head_of(list->arena, *next)) {
      /* The chunk moved to another bin while we walked. */
      out->complete = 0;
      return -1;
    }
  }
  if (*next % CHUNK_ALIGN != 0) {
    out->complete = 0;
    return -1;
  }
  return 1;
}

/* Reads remote[i] into local[i] for i < count by writing them into a pipe (writev copies from our
   own memory with copy_from_user: a page not mapped answers EFAULT, as with process_vm_readv)
   and reading the pipe back. process_vm_readv pins every page it reads (get_user_pages): the
   census took 1.6-2.3 times as long through it alone (scripts/bench/RESULTS.md). Each write is
   a slice of at most the pipe's capacity (`slice` bytes), and everything written is read back
   before the next. A write cut short by a fault keeps only the whole pages of the stream written
   before it (fs/pipe.c pipe_write): the iovecs wholly inside those are read, and the rest of the
   round goes to process_vm_readv, which tells which one faulted. Any short write, whatever its
   cause, only does that. Returns how many iovecs, from the first, were read (gone[i] = 0 for
   each); on any other error the pipe is given up (fds set to -1). */
static size_t read_through_pipe(int fds[2], size_t slice, const struct iovec *local, const struct iovec *remote, size_t count, unsigned char *gone) {
  size_t first = 0;
  while (first < count) {
    size_t end = first, bytes = 0;
    while (end < count && bytes + local[end].iov_len <= slice) bytes += local[end++].iov_len;
    /* The system call itself, not libc's writev: a sanitizer's writev checks its buffers first
       (ASan reads their shadow), and these may point anywhere; the kernel answers EFAULT. */
    ssize_t wrote = syscall(SYS_writev, fds[1], remote + first, (int)(end - first));
    int failed = wrote < 0 && errno != EFAULT;
    size_t got = wrote > 0 ? (size_t)wrote : 0;
    size_t whole = first;
    for (size_t left = got; whole < end && left >= local[whole].iov_len; whole++) left -= local[whole].iov_len;
    /* Empty the pipe: the whole iovecs into their windows, then whatever part of the next one got in. */
    size_t drained = 0;
    if (whole > first) {
      ssize_t n = readv(fds[0], local + first, (int)(whole - first));
      drained = n > 0 ? (size_t)n : 0;
    }
    while (drained < got) {
      unsigned char sink[256];
      size_t want = got - drained < sizeof sink ? got - drained : sizeof sink;
      ssize_t n = read(fds[0], sink, want);
      if (n <= 0) break;
      drained += (size_t)n;
    }
    if (drained != got || failed) {
      /* The pipe no longer behaves as this expects: process_vm_readv for the rest of the census. */
      close(fds[0]);
      close(fds[1]);
      fds[0] = fds[1] = -1;
      return first;
    }
    for (size_t i = first; i < whole; i++) gone[i] = 0;
    if (whole < end) return whole;
    first = end;
  }
  return count;
}

int asp_glibc_census_walk(unsigned long start, asp_glibc_census *out, size_t max_chunks, int reader) {
  memset(out, 0, sizeof *out);
  out->complete = 1;
#if !CENSUS_LAYOUT_KNOWN
  (void)start;
  (void)max_chunks;
  return ASP_CENSUS_UNSUPPORTED;
#else
  unsigned char arena[ARENA_SIZE];
  workspace ws;
  if (workspace_get(&ws) != 0) return ASP_CENSUS_READ_REFUSED;
  walk_list *lists = (walk_list *)ws.mem;
  struct iovec *local = (struct iovec *)(ws.mem + WORKSPACE_LISTS * sizeof(walk_list));
  struct iovec *remote = local + BATCH;
  unsigned char *windows = (unsigned char *)(remote + BATCH);
  /* More arenas than the workspace has lists for: all of them, in a mapping of their own. */
  walk_list *many = NULL;
  size_t many_len = (size_t)MAX_ARENAS * LISTS_PER_ARENA * sizeof(walk_list);
  size_t lists_len = 0;
  /* The arenas walked so far, to stop at a ring that loops short of main_arena. */
  uintptr_t arenas_seen[MAX_ARENAS];

  /* The ring: main_arena, then each `next` until it comes back. */
  uintptr_t addr = start;
  int rc = ASP_CENSUS_OK;
  for (;;) {
    if (out->arenas == MAX_ARENAS || read_arena(addr, arena) != 0) {
      if (out->arenas == 0) rc = ASP_CENSUS_NOT_FOUND;
      out->complete = 0;
      break;
    }
    /* A ring that comes back to an arena other than main_arena is no ring glibc builds (it only
       ever inserts after main_arena: arena.c _int_new_arena); counting its arenas again would
       count their chunks twice, and 1,024 laps of one arena's lists are 140,000 lists to walk. */
    if (seen_before(arenas_seen, out->arenas, addr)) {
      out->complete = 0;
      break;
    }
    arenas_seen[out->arenas] = addr;
    if (out->arenas == WORKSPACE_ARENAS && many == NULL) {
      many = map_buffer(many_len);
      if (many == NULL) {
        out->complete = 0;
        break;
      }
      memcpy(many, lists, lists_len * sizeof(walk_list));
      lists = many;
    }
    out->arenas++;
    uintptr_t system_mem = word_at(arena, OFF_SYSTEM_MEM);
    out->arena = add_sat(out->arena, system_mem);
    /* int_mallinfo: avail starts at chunksize(av->top), nblocks at 1 (the top). */
    uintptr_t top_size;
    if (safe_read(&top_size, word_at(arena, OFF_TOP) + CHUNK_SIZE_FIELD, sizeof top_size) == 0) {
      top_size &= ~(uintptr_t)SIZE_BITS;
      out->fordblks = add_sat(out->fordblks, top_size);
      if (addr == start) out->keepcost = top_size;
    } else {
      out->complete = 0;
    }
    out->ordblks++;
    for (int bin = 0; bin < NFASTBINS; bin++) {
      uintptr_t first = word_at(arena, OFF_FASTBINS + (size_t)bin * sizeof(uintptr_t));
      if (first != 0) lists[lists_len++] = (walk_list){first, 0, addr, system_mem, HEADER_WINDOW, 0};
    }
    for (int bin = 1; bin < NBINS; bin++) {
      uintptr_t head = bin_head(addr, bin);
      /* last(b) = b->bk: int_mallinfo walks each bin backwards from its head. */
      uintptr_t last = word_at(arena, OFF_BINS + ((size_t)(bin - 1) * 2 + 1) * sizeof(uintptr_t));
      if (last != head) lists[lists_len++] = (walk_list){last, head, addr, system_mem, HEADER_WINDOW, 0};
    }
    addr = word_at(arena, OFF_NEXT);
    if (addr == start) break;
  }

  /* Every list advances one window per round, one read (a writev and a readv of the pipe, or one
     process_vm_readv) for up to BATCH lists: the walk costs a few system calls per round, not
     per chunk, where the free chunks spread over bins. A list reads its chunk's header, or, when
     its last step was short, up to WINDOW bytes on the side it runs to (never past the page,
     which may be the last one mapped), and the walk goes on inside them while the next chunk
     lies there too: free lists often run in address order, so one read covers several.
     A chunk found gone counts against max_chunks like one read, so the walk's work stays bounded
     by max_chunks however many lists point nowhere (the fuzz target found 140,000 such lists
     taking over 10 s when each gone chunk cost a round). */
  size_t walked = 0; /* chunks looked at: counted, or found gone */
  pid_t self = getpid();
  unsigned char gone[BATCH];
  /* One pipe per census, closed before it returns: no descriptor held between calls (a fork
     taken mid-census leaves its child two it never uses; a process at its descriptor limit is
     two short for the census's duration). Without one (EMFILE, a seccomp filter),
     process_vm_readv alone. Writing to it cannot raise SIGPIPE: its read end stays open until
     the write end is closed. */
  int pipe_fds[2] = {-1, -1};
  if (reader != ASP_CENSUS_READ_PIPE || pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) pipe_fds[0] = pipe_fds[1] = -1;
  /* A user over fs.pipe-user-pages-soft gets pipes of 2 pages: a slice never exceeds the pipe. */
  int pipe_size = pipe_fds[0] >= 0 ? fcntl(pipe_fds[1], F_GETPIPE_SZ) : -1;
  size_t slice = pipe_size > 0 && (size_t)pipe_size < PIPE_SLICE ? (size_t)pipe_size : PIPE_SLICE;
  if (pipe_fds[0] >= 0 && pipe_size < (int)WINDOW) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    pipe_fds[0] = pipe_fds[1] = -1;
  }
  while (lists_len > 0) {
    if (walked >= max_chunks) {
      out->complete = 0;
      break;
    }
    size_t count = lists_len < BATCH ? lists_len : BATCH;
    for (size_t i = 0; i < count; i++) {
      /* The header, and as much of the window as its page holds on the side the list runs to. */
      uintptr_t from = lists[i].node + CHUNK_SIZE_FIELD;
      size_t len = sizeof(chunk_header);
      if (from / PAGE == (from + sizeof(chunk_header) - 1) / PAGE) {
        size_t window = lists[i].window;
        if (lists[i].backward) {
          size_t room = (size_t)(from % PAGE) + sizeof(chunk_header);
          len = room < window ? room : window;
          from = from + sizeof(chunk_header) - len;
        } else {
          size_t room = PAGE - (size_t)(from % PAGE);
          len = room < window ? room : window;
        }
      }
      local[i] = (struct iovec){windows + i * (size_t)WINDOW, len};
      remote[i] = (struct iovec){(void *)from, len};
    }
    /* The pipe first; from the first slice it could not read whole, process_vm_readv, which
       stops at the first iovec it cannot read whole (EFAULT: that chunk was unmapped under us).
       That read then goes on from the next one, so every list of the batch is read or found
       gone in this round. */
    size_t done = pipe_fds[0] >= 0 ? read_through_pipe(pipe_fds, slice, local, remote, count, gone) : 0;
    int refused = 0;
    while (done < count) {
      ssize_t got = process_vm_readv(self, local + done, count - done, remote + done, count - done, 0);
      if (got < 0 && errno != EFAULT) {
        refused = 1; /* seccomp, EPERM: nothing more can be read */
        break;
      }
      for (size_t left = got < 0 ? 0 : (size_t)got; done < count && left >= local[done].iov_len; done++) {
        left -= local[done].iov_len;
        gone[done] = 0;
      }
      if (done < count) gone[done++] = 1;
    }
    if (refused) {
      out->complete = 0;
      if (walked == 0 && done == 0 && rc == ASP_CENSUS_OK) rc = ASP_CENSUS_READ_REFUSED;
      break;
    }
    /* The batch's lists that go on keep their places at its front. */
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
      walk_list list = lists[i];
      if (gone[i]) {
        out->complete = 0;
        walked++;
        continue;
      }
      uintptr_t window_start = (uintptr_t)remote[i].iov_base;
      size_t window_len = local[i].iov_len;
      const unsigned char *window = local[i].iov_base;
      for (;;) {
        if (walked >= max_chunks) {
          lists[kept++] = list; /* unfinished: the loop above ends the walk, incomplete */
          break;
        }
        chunk_header header;
        memcpy(&header, window + (list.node + CHUNK_SIZE_FIELD - window_start), sizeof header);
        walked++;
        uintptr_t next;
        if (census_step(&list, &header, out, &next) <= 0) break; /* the list ended, or broke */
        uintptr_t counted = list.node;
        list.node = next;
        uintptr_t at = next + CHUNK_SIZE_FIELD;
        /* Within the window, without an overflow: a pointer near the top of the address space
           must not wrap back into it (the fuzz target found 0xfff...f0). */
        if (at < window_start || at - window_start > window_len - sizeof(chunk_header)) {
          /* A list that runs in address order, up or down (frees of neighbouring blocks), finds
             its next chunk within WINDOW bytes: it reads a whole window that way next, which then
             holds several. */
          int up = next > counted && next - counted < WINDOW;
          int down = next < counted && counted - next < WINDOW;
          list.window = up || down ? WINDOW : HEADER_WINDOW;
          list.backward = down;
          lists[kept++] = list;
          break;
        }
      }
    }
    /* The slots of the lists that ended are filled from the array's end (the order of lists does
       not matter to the sums): a round costs O(BATCH), not O(every list). */
    size_t ended = count - kept;
    size_t waiting = lists_len - count;
    size_t moved = ended < waiting ? ended : waiting;
    memcpy(lists + kept, lists + lists_len - moved, moved * sizeof(walk_list));
    lists_len -= ended;
  }
  if (pipe_fds[0] >= 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
  }
  if (many != NULL) munmap(many, many_len);
  workspace_put(&ws);
  return rc;
#endif
}

size_t asp_glibc_census_listed(const asp_glibc_census *census) {
  size_t bins = census->ordblks > census->arenas ? census->ordblks - census->arenas : 0;
  return add_sat(bins, census->smblks);
}

/* The writable PT_LOAD segment of the object containing `address`. */
typedef struct {
  uintptr_t address;
  uintptr_t start;
  size_t len;
} segment_query;

static int find_writable_segment(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  segment_query *query = data;
  int contains = 0;
  uintptr_t writable_start = 0;
  size_t writable_len = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    if (query->address >= start && query->address < start + ph->p_memsz) contains = 1;
    if ((ph->p_flags & PF_W) && ph->p_memsz > writable_len) {
      writable_start = start;
      writable_len = ph->p_memsz;
    }
  }
  if (!contains || writable_len == 0) return 0;
  query->start = writable_start;
  query->len = writable_len;
  return 1;
}

/* glibc's version as major * 100 + minor, via dlsym so a musl build links; 0 if not glibc. */
static int glibc_version(void) {
  const char *(*version_fn)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
  if (version_fn == NULL) return 0;
  int major = 0, minor = 0;
  if (sscanf(version_fn(), "%d.%d", &major, &minor) != 2) return 0;
  return major * 100 + minor;
}

/* A copy of libc's writable data segment (where main_arena and mp_ live). The caller munmaps
   copy_len bytes; the copy is followed by `extra_per_word` zeroed bytes per 8-byte word of it, for
   the caller's use. */
typedef struct {
  unsigned char *copy;
  size_t copy_len;
  uintptr_t start;
  size_t len;
} libc_data;

static int read_libc_data(libc_data *data, size_t extra_per_word) {
  void *trim = dlsym(RTLD_DEFAULT, "malloc_trim");
  if (trim == NULL) return -1;
  segment_query query = {(uintptr_t)trim, 0, 0};
  if (dl_iterate_phdr(find_writable_segment, &query) == 0 || query.len < ARENA_SIZE) return -1;
  data->copy_len = query.len + (query.len / sizeof(uintptr_t)) * extra_per_word;
  data->copy = map_buffer(data->copy_len);
  if (data->copy == NULL) return -1;
  data->start = query.start;
  data->len = query.len;
  if (safe_read(data->copy, query.start, query.len) != 0) {
    munmap(data->copy, data->copy_len);
    return -1;
  }
  return 0;
}

/* Scans libc's data segment for main_arena (see the top of this file). 0 if not found. */
static uintptr_t find_main_arena(void) {
  /* One vote counter per 8-byte position after the copy: each self-referencing pair at p votes
     for every arena start it could be bin k of (p - OFF_BINS - 16 (k - 1)); a few hundred pairs
     cost ~40,000 steps, where scoring every position would cost ~0.5 M. */
  libc_data data;
  if (read_libc_data(&data, sizeof(uint16_t)) != 0) return 0;
  size_t positions = data.len / sizeof(uintptr_t);
  uint16_t *votes = (uint16_t *)(data.copy + data.len);
  uintptr_t found = 0;
  for (size_t at = 0; at + 2 * sizeof(uintptr_t) <= data.len; at += sizeof(uintptr_t)) {
    uintptr_t self = data.start + at - CHUNK_FD;
    if (word_at(data.copy, at) != self || word_at(data.copy, at + sizeof(uintptr_t)) != self) continue;
    for (int bin = 1; bin < NBINS; bin++) {
      size_t back = OFF_BINS + (size_t)(bin - 1) * 2 * sizeof(uintptr_t);
      if (back > at) break;
      size_t start = at - back;
      if (start + ARENA_SIZE <= data.len) votes[start / sizeof(uintptr_t)]++;
    }
  }
  unsigned best = 0;
  for (size_t i = 0; i < positions; i++) {
    if (votes[i] > best) {
      best = votes[i];
      found = data.start + i * sizeof(uintptr_t);
    }
  }
  unsigned char arena[ARENA_SIZE];
  if (best < MIN_EMPTY_BINS || read_arena(found, arena) != 0) found = 0;
  munmap(data.copy, data.copy_len);
  return found;
}

/*
 * mmapped chunks are on no arena's list: mallinfo2 takes hblks and hblkhd from glibc's static
 * `struct malloc_par mp_` (n_mmaps, mmapped_mem). Its tail has not changed since 2.26: ints
 * n_mmaps, n_mmaps_max, max_n_mmaps, no_dyn_threshold; size_t mmapped_mem, max_mmapped_mem; char
 * *sbrk_base; then the tcache parameters tcache_bins (64), tcache_max_bytes (1032), tcache_count
 * (7). 2.35 put an int hp_flags just before n_mmaps, which moves the four ints 4 bytes down (the
 * padding moves behind them). Found by that default triple followed back, with n_mmaps_max at its
 * default 65536 (DEFAULT_MMAP_MAX) telling which of the two layouts it is. A process that changed
 * any of these by tunable or mallopt has no mp_ found: the census then has no hblks.
 */
enum {
  MP_TCACHE_BINS = 64,
  MP_TCACHE_MAX_BYTES = 1032,
  MP_TCACHE_COUNT = 7,
  MP_MMAP_MAX = 65536,
  /* Offsets back from tcache_bins. */
  MP_MMAPPED_MEM_BACK = 24,
  MP_N_MMAPS_BACK_OLD = 40, /* < 2.35: n_mmaps right after arena_max */
  MP_N_MMAPS_BACK_HP = 44   /* >= 2.35: after hp_flags */
};

static int int_at(const unsigned char *buf, size_t offset) {
  int value;
  memcpy(&value, buf + offset, sizeof value);
  return value;
}

/* The address of mp_.n_mmaps, and how far mmapped_mem lies after it; 0 if not found. */
static uintptr_t find_mp_n_mmaps(size_t *to_mmapped_mem) {
  libc_data data;
  if (read_libc_data(&data, 0) != 0) return 0;
  uintptr_t found = 0;
  int matches = 0;
  /* Word-aligned positions from the first one with room for the fields behind it. */
  for (size_t at = 6 * sizeof(uintptr_t); at + 3 * sizeof(uintptr_t) <= data.len; at += sizeof(uintptr_t)) {
    if (word_at(data.copy, at) != MP_TCACHE_BINS || word_at(data.copy, at + 8) != MP_TCACHE_MAX_BYTES ||
        word_at(data.copy, at + 16) != MP_TCACHE_COUNT)
      continue;
    size_t back = int_at(data.copy, at - MP_N_MMAPS_BACK_HP + 4) == MP_MMAP_MAX    ? MP_N_MMAPS_BACK_HP
                  : int_at(data.copy, at - MP_N_MMAPS_BACK_OLD + 4) == MP_MMAP_MAX ? MP_N_MMAPS_BACK_OLD
                                                                                   : 0;
    if (back == 0) continue;
    int n_mmaps = int_at(data.copy, at - back), max_n_mmaps = int_at(data.copy, at - back + 8);
    uintptr_t mmapped = word_at(data.copy, at - MP_MMAPPED_MEM_BACK), max_mmapped = word_at(data.copy, at - MP_MMAPPED_MEM_BACK + 8);
    if (n_mmaps < 0 || n_mmaps > max_n_mmaps || mmapped > max_mmapped) continue;
    found = data.start + at - back;
    *to_mmapped_mem = back - MP_MMAPPED_MEM_BACK;
    matches++;
  }
  munmap(data.copy, data.copy_len);
  return matches == 1 ? found : 0;
}

static uintptr_t mp_n_mmaps_at = 0;
static size_t mp_to_mmapped_mem = 0;

int asp_glibc_mmapped(size_t *count, size_t *bytes) {
  uintptr_t at = __atomic_load_n(&mp_n_mmaps_at, __ATOMIC_ACQUIRE);
  if (at == 0) {
    if (dlsym(RTLD_DEFAULT, "malloc_trim") == NULL) return ASP_CENSUS_NOT_GLIBC;
    int version = glibc_version();
    if (!CENSUS_LAYOUT_KNOWN || version < 232 || version > 241) return ASP_CENSUS_UNSUPPORTED;
    size_t to_mmapped_mem = 0;
    at = find_mp_n_mmaps(&to_mmapped_mem);
    if (at == 0) return ASP_CENSUS_NOT_FOUND;
    mp_to_mmapped_mem = to_mmapped_mem;
    __atomic_store_n(&mp_n_mmaps_at, at, __ATOMIC_RELEASE);
  }
  /* n_mmaps through mmapped_mem in one read: at most 32 bytes of mp_. */
  unsigned char span[MP_N_MMAPS_BACK_HP - MP_MMAPPED_MEM_BACK + sizeof(uintptr_t)];
  if (safe_read(span, at, mp_to_mmapped_mem + sizeof(uintptr_t)) != 0) return ASP_CENSUS_READ_REFUSED;
  int n_mmaps = int_at(span, 0);
  uintptr_t mmapped_mem = word_at(span, mp_to_mmapped_mem);
  *count = n_mmaps < 0 ? 0 : (size_t)n_mmaps;
  *bytes = mmapped_mem;
  return ASP_CENSUS_OK;
}

int asp_glibc_census_take(asp_glibc_census *out, size_t max_chunks) {
  return asp_glibc_census_take_with(out, max_chunks, ASP_CENSUS_READ_PIPE);
}

int asp_glibc_census_take_with(asp_glibc_census *out, size_t max_chunks, int reader) {
  memset(out, 0, sizeof *out);
  /* Found once: main_arena does not move. Not found is looked for again on the next call. */
  static uintptr_t main_arena = 0;
  uintptr_t cached = __atomic_load_n(&main_arena, __ATOMIC_ACQUIRE);
  if (cached == 0) {
    if (dlsym(RTLD_DEFAULT, "malloc_trim") == NULL) return ASP_CENSUS_NOT_GLIBC;
    int version = glibc_version();
    if (!CENSUS_LAYOUT_KNOWN || version < 232 || version > 241) return ASP_CENSUS_UNSUPPORTED;
    uintptr_t found = find_main_arena();
    if (found == 0) {
      /* Could our own reads be refused? Tell that apart from a layout we failed to recognise. */
      uintptr_t probe;
      return safe_read(&probe, (uintptr_t)&main_arena, sizeof probe) == 0 ? ASP_CENSUS_NOT_FOUND : ASP_CENSUS_READ_REFUSED;
    }
    __atomic_store_n(&main_arena, found, __ATOMIC_RELEASE);
    cached = found;
  }
  return asp_glibc_census_walk(cached, out, max_chunks, reader);
}

int asp_glibc_lock_free_mallinfo2(asp_mallinfo2 *out, size_t max_chunks, int *complete) {
  asp_glibc_census census;
  size_t hblks = 0, hblkhd = 0;
  int rc = asp_glibc_census_take(&census, max_chunks);
  if (rc == ASP_CENSUS_OK) rc = asp_glibc_mmapped(&hblks, &hblkhd);
  if (rc != ASP_CENSUS_OK) return rc;
  memset(out, 0, sizeof *out);
  out->arena = census.arena;
  out->ordblks = census.ordblks;
  out->smblks = census.smblks;
  out->hblks = hblks;
  out->hblkhd = hblkhd;
  out->fsmblks = census.fsmblks;
  out->fordblks = census.fordblks;
  /* int_mallinfo: uordblks = system_mem - avail, summed over the arenas. */
  out->uordblks = census.arena >= census.fordblks ? census.arena - census.fordblks : 0;
  out->keepcost = census.keepcost;
  *complete = census.complete;
  return ASP_CENSUS_OK;
}
