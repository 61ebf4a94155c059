/*
 * liballocscope_agent.so: preloaded into any dynamically linked program
 * (LD_PRELOAD=.../liballocscope_agent.so, alone or after an allocator library), it serves the
 * program's allocator snapshot on a Unix socket, in the wire format of wire.h.
 *
 * Its promises (DESIGN.md "The agent's promises"), and how each is kept:
 * - never crashes, blocks or signals its host: all work happens on one thread of its own, started
 *   with every signal blocked (the host may expect one particular thread to take its signals,
 *   heaptrack bugs.kde.org 378494); sends use MSG_NOSIGNAL, so a client that goes away cannot
 *   SIGPIPE the host (heaptrack's collector dying kills its target that way, references/
 *   external.md §1.4); every socket read and write has a timeout, and connections are served one
 *   at a time, so a stalled client delays only other clients;
 * - nothing on the host's malloc path: no function of the host is wrapped or hooked;
 * - no output on the host's stdout or stderr: failures are silent; the client reports them;
 * - the socket lives in a 0700 directory owned by the host's uid (a directory someone else made,
 *   or a symlink, is refused), with mode 0600, and every peer's uid is checked (SO_PEERCRED: the
 *   same uid or root);
 * - after fork the child serves its own pid on its own socket, never the parent's;
 * - it is never unloaded (-z nodelete), so no dlclose can pull code from under its thread;
 * - a single-threaded glibc host stays on glibc's single-thread fast paths (see "keeping a
 *   single-threaded host single-threaded" below).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../probe/allocator_detect.h"
#include "../probe/glibc_census.h"
#include "../probe/glibc_probe.h"
#include "../probe/jemalloc_probe.h"
#include "../probe/mimalloc_probe.h"
#include "../probe/process_probe.h"
#include "../probe/sample.h"
#include "../probe/tcmalloc_probe.h"
#include "wire.h"

#define AGENT_VERSION "0.1.0"
/* Per-connection bounds: a request must arrive within this time, a response leave within it. */
#define IO_TIMEOUT_SECONDS 2
/* A whole request must arrive within this time of the connection (or of the previous answer):
   a local client writes its line at once, and a client queued behind a stalled one must still be
   answered within its own 2 s timeout (lib/targets/agent.ts). Per request, not per recv(2): a
   client trickling a byte a second would otherwise hold the one agent thread indefinitely. */
#define REQUEST_DEADLINE_MS 250
#define MAX_REQUESTS_PER_CONNECTION 64
/* stats-text can be megabytes (jemalloc "J" with 64 arenas: 2.6 MB, limits.md §2). */
#define MAX_STATS_TEXT (16 * 1024 * 1024)

static int listen_fd = -1;
static pid_t served_pid = 0;
/* glibc's __libc_single_threaded while the agent keeps the host single-threaded; else NULL. */
static char *kept_single_threaded = NULL;
/* Set once start_agent has decided whether to keep the host single-threaded: until then the
   agent's thread serves nothing (a request answered with mallinfo2's locks just before the host
   went back to its lock-free paths would race it). */
static int decided = 0;
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* ---- the socket ---- */

static int socket_directory(char *out, size_t cap) {
  const char *configured = getenv("ALLOCSCOPE_AGENT_DIR");
  int n = configured != NULL && configured[0] != '\0'
              ? snprintf(out, cap, "%s", configured)
              : snprintf(out, cap, "/tmp/allocscope-%u", (unsigned)geteuid());
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Creates or accepts the directory only if it is a real directory (not a symlink), owned by us,
   with no access for group or others. */
static int trusted_directory(const char *dir) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1; /* a symlink fails here with ELOOP */
  struct stat st;
  int ok = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 077) == 0;
  close(fd);
  return ok ? 0 : -1;
}

static int open_socket(void) {
  char dir[80];
  if (socket_directory(dir, sizeof(dir)) != 0 || trusted_directory(dir) != 0) return -1;
  pid_t pid = getpid();
  int n = snprintf(socket_path, sizeof(socket_path), "%s/%d.sock", dir, (int)pid);
  if (n <= 0 || (size_t)n >= sizeof(socket_path)) return -1;
  /* A socket left by an earlier process with this pid: remove it if it is ours. */
  struct stat st;
  if (lstat(socket_path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) return -1;
    unlink(socket_path);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un address;
  memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  memcpy(address.sun_path, socket_path, (size_t)n + 1);
  if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || chmod(socket_path, 0600) != 0 ||
      lstat(socket_path, &st) != 0 || !S_ISSOCK(st.st_mode) || (st.st_mode & 077) != 0 ||
      listen(fd, 16) != 0) {
    close(fd);
    unlink(socket_path);
    return -1;
  }
  served_pid = pid;
  return fd;
}

/* ---- keeping a single-threaded host single-threaded ----

   Starting the agent's thread makes glibc leave its single-thread fast paths for good: malloc and
   free take the arena lock (atomics) once __libc_single_threaded is false, +4.19% instructions and
   +4.8% CPU per malloc/free in a malloc-bound single-threaded host (scripts/bench/RESULTS.md,
   agent section). glibc 2.36's malloc decides by that variable alone (SINGLE_THREAD_P; callgrind:
   resetting it alone restores the count). So, when the host was single-threaded when the agent
   started, the agent sets it back to true after creating its thread, and its thread then keeps
   off everything that variable lets the host run unlocked: it never calls malloc or free (not even
   indirectly: the answers that would are refused), never calls mallinfo2, malloc_info or
   malloc_trim (they take the arena locks the host no longer takes), and uses no stdio stream. It
   reads glibc's figures through the lock-free census instead (glibc_census.h), which writes
   nothing of the host's and lets the kernel read for it (a pipe of its own, process_vm_readv).
   When the host starts a thread of its own, glibc sets the variable false again, for good, and
   the agent's requests take the locked paths. */

static int host_single_threaded(void) {
  return kept_single_threaded != NULL && __atomic_load_n(kept_single_threaded, __ATOMIC_ACQUIRE) != 0;
}

/* While the host is kept single-threaded, glibc's setuid family changes the calling thread only
   (INLINE_SETXID_SYSCALL skips the broadcast to other threads, __nptl_setxid, when
   __libc_single_threaded is true), so a host that drops privileges (nginx and Apache workers,
   after fork) would leave the agent's thread with the old ones. Before each connection, the
   agent's thread copies the main thread's uids, gids and groups (/proc/self/status: the leader's)
   onto itself with raw system calls, which act on the calling thread alone. 0 when they match
   (now); -1 when they could not be made to, or not be read (no /proc, as in some chroots), and
   then the agent stops serving. No malloc: the status file is pread into a stack buffer. */
static int follow_host_credentials(void) {
  asp_status leader;
  if (asp_read_status(&leader) != 0 || leader.uids[0] < 0 || leader.gids[0] < 0 || leader.n_groups < 0) return -1;
  const int64_t *uids = leader.uids, *gids = leader.gids;
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0) return -1;
  if (ruid == uids[0] && euid == uids[1] && suid == uids[2] && rgid == gids[0] && egid == gids[1] && sgid == gids[2]) return 0;
  /* Groups first and uids last: changing uids away from root ends the right to change the rest. */
  gid_t groups[ASP_STATUS_MAX_GROUPS];
  for (int i = 0; i < leader.n_groups; i++) groups[i] = (gid_t)leader.groups[i];
  if (syscall(SYS_setgroups, leader.n_groups, groups) != 0 && euid == 0) return -1;
  if (syscall(SYS_setresgid, gids[0], gids[1], gids[2]) != 0) return -1;
  if (syscall(SYS_setresuid, uids[0], uids[1], uids[2]) != 0) return -1;
  if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0) return -1;
  return ruid == uids[0] && euid == uids[1] && suid == uids[2] && rgid == gids[0] && egid == gids[1] && sgid == gids[2] ? 0 : -1;
}

/* At most this many free chunks for the check below (~8-14 ms of census, ~3 ms of mallinfo2: scripts/bench/RESULTS.md): a
   host attached to late with a bigger heap is not kept single-threaded rather than stalled. */
#define KEEP_CHECK_MAX_CHUNKS 20000

/* True when the census reads exactly what mallinfo2 reads, now, on this (the only) thread:
   nothing can change the heap between the two calls, so any difference is a census that does not
   understand this glibc. The census goes first: it bounds the walk mallinfo2 would then make. */
static int census_agrees_with_mallinfo2(void) {
  asp_mallinfo2 locked, lock_free;
  int complete = 0;
  if (asp_glibc_lock_free_mallinfo2(&lock_free, KEEP_CHECK_MAX_CHUNKS, &complete) != 0 || !complete) return 0;
  if (asp_glibc_mallinfo2(&locked) != 0) return 0;
  return locked.arena == lock_free.arena && locked.ordblks == lock_free.ordblks && locked.smblks == lock_free.smblks &&
         locked.hblks == lock_free.hblks && locked.hblkhd == lock_free.hblkhd && locked.fsmblks == lock_free.fsmblks &&
         locked.uordblks == lock_free.uordblks && locked.fordblks == lock_free.fordblks && locked.keepcost == lock_free.keepcost;
}

/* 1: the census agreed with mallinfo2 in this process (or the parent it was forked from); -1: it
   did not; 0: not checked. The layout it proves is the process's for good. */
static int census_checked = 0;

/* Called on the host's only thread, before the agent's thread exists: &__libc_single_threaded
   when the agent may keep the host single-threaded, else NULL. In a fork's child the parent's
   check stands and none is made: a walk there would delay every fork of a big heap. */
static char *single_threaded_flag_to_keep(int in_fork_child) {
  const char *setting = getenv("ALLOCSCOPE_AGENT_SINGLE_THREADED");
  if (setting != NULL && setting[0] == '0') return NULL;
  char *flag = (char *)dlsym(RTLD_DEFAULT, "__libc_single_threaded");
  if (flag == NULL || *flag == 0) return NULL;
  asp_allocator allocator;
  asp_detect_allocator(&allocator);
  if (allocator.kind != ASP_ALLOCATOR_GLIBC) return NULL;
  if (census_checked == 0 && !in_fork_child) census_checked = census_agrees_with_mallinfo2() ? 1 : -1;
  return census_checked == 1 ? flag : NULL;
}

/* ---- sending ---- */

static long ms_until(const struct timespec *deadline) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (deadline->tv_sec - now.tv_sec) * 1000L + (deadline->tv_nsec - now.tv_nsec) / 1000000L;
}

static void deadline_in(struct timespec *deadline, long ms) {
  clock_gettime(CLOCK_MONOTONIC, deadline);
  deadline->tv_sec += ms / 1000;
  deadline->tv_nsec += (ms % 1000) * 1000000L;
  if (deadline->tv_nsec >= 1000000000L) {
    deadline->tv_sec++;
    deadline->tv_nsec -= 1000000000L;
  }
}

/* SO_RCVTIMEO/SO_SNDTIMEO of what is left of `deadline`; 0 when nothing is left. */
static int timeout_until(int fd, int option, const struct timespec *deadline) {
  long left = ms_until(deadline);
  if (left <= 0) return 0;
  struct timeval tv = {left / 1000, (left % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, option, &tv, sizeof(tv));
  return 1;
}

static int send_all(int fd, const char *data, size_t len) {
  /* One deadline for the whole answer, not per send(2): a client reading a byte a second must
     not hold the agent either. */
  struct timespec deadline;
  deadline_in(&deadline, IO_TIMEOUT_SECONDS * 1000L);
  while (len > 0) {
    if (!timeout_until(fd, SO_SNDTIMEO, &deadline)) return -1;
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

static char response[64 * 1024];

static int send_error(int fd, const char *code, const char *message) {
  asw_writer w;
  asw_init(&w, response, sizeof(response));
  asw_raw(&w, "{\"v\":1,\"ok\":false,\"error\":{\"code\":");
  asw_string(&w, code);
  asw_raw(&w, ",\"message\":");
  asw_string(&w, message);
  asw_raw(&w, "}}\n");
  return send_all(fd, response, w.len);
}

static double wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

static void write_allocator(asw_writer *w, const asp_allocator *a) {
  asw_key(w, "allocator", 0);
  asw_raw(w, "{");
  asw_key(w, "name", 1);
  asw_string(w, asp_allocator_name(a->kind));
  asw_key(w, "version", 0);
  asw_string(w, a->version);
  asw_key(w, "detectedBy", 0);
  asw_string(w, a->detected_by);
  asw_key(w, "mallocLibrary", 0);
  asw_string(w, a->malloc_library);
  asw_key(w, "symbolPrefix", 0);
  asw_string(w, a->symbol_prefix);
  asw_raw(w, "}");
}

static void write_head(asw_writer *w, const char *op) {
  asw_raw(w, "{\"v\":1,\"ok\":true,\"op\":");
  asw_string(w, op);
  asw_key(w, "pid", 0);
  asw_number(w, (double)getpid());
}

static int finish(int fd, asw_writer *w) {
  asw_raw(w, "}\n");
  if (w->overflow) return send_error(fd, "EAGENT", "the response did not fit the agent's buffer");
  return send_all(fd, w->buf, w->len);
}

static int answer_info(int fd, const asp_allocator *a) {
  asw_writer w;
  asw_init(&w, response, sizeof(response));
  write_head(&w, "info");
  asw_key(&w, "agentVersion", 0);
  asw_string(&w, AGENT_VERSION);
  asw_key(&w, "protocol", 0);
  asw_number(&w, ASW_VERSION);
  /* Whether the host runs on glibc's single-thread fast paths with the agent in it right now. */
  asw_key(&w, "hostSingleThreaded", 0);
  asw_raw(&w, host_single_threaded() ? "true" : "false");
  write_allocator(&w, a);
  return finish(fd, &w);
}

static int answer_snapshot(int fd, const asp_allocator *a, int with_status) {
  double slots[ASP_SAMPLE_SLOT_COUNT];
  double time = wall_ms();
  int flags = ASP_SAMPLE_WITH_ALLOCATOR | (with_status ? ASP_SAMPLE_WITH_STATUS : 0);
  if (host_single_threaded()) flags |= ASP_SAMPLE_GLIBC_LOCK_FREE;
  asp_sample(a->kind, flags, slots);
  asw_writer w;
  asw_init(&w, response, sizeof(response));
  write_head(&w, "snapshot");
  asw_key(&w, "time", 0);
  asw_number(&w, time);
  write_allocator(&w, a);
  asw_key(&w, "slots", 0);
  asw_raw(&w, "{");
  int first = 1;
  for (int i = 0; i < ASP_SAMPLE_SLOT_COUNT; i++) {
    if (slots[i] != slots[i]) continue; /* NaN: the source did not provide it */
    asw_key(&w, asp_sample_slot_names[i], first);
    asw_number(&w, slots[i]);
    first = 0;
  }
  asw_raw(&w, "}");
  return finish(fd, &w);
}

static double rss_bytes(void) {
  asp_statm statm;
  return asp_read_statm(&statm) == 0 ? (double)statm.resident_pages * (double)asp_page_size() : -1;
}

static const char single_threaded_refusal[] =
    "this host is single-threaded and the agent keeps glibc's single-thread fast paths for it (no "
    "arena locks): a malloc_trim or malloc_info from the agent's thread would race the host's "
    "malloc. Start the host with ALLOCSCOPE_AGENT_SINGLE_THREADED=0 to allow them (about 4-5% more CPU "
    "per malloc/free in a malloc-bound host), or call them from the host itself";

static int answer_trim(int fd, const asp_allocator *a, long long pad) {
  if (host_single_threaded()) return send_error(fd, "EUNSUPPORTED", single_threaded_refusal);
  char action[64];
  double before = rss_bytes();
  int64_t start = asp_monotonic_ns();
  int done = 0;
  switch (a->kind) {
    case ASP_ALLOCATOR_GLIBC:
      snprintf(action, sizeof(action), "malloc_trim(%lld)", pad);
      done = asp_glibc_malloc_trim((size_t)pad) >= 0;
      break;
    case ASP_ALLOCATOR_JEMALLOC:
      snprintf(action, sizeof(action), "mallctl arena.%d.purge", ASP_JE_ARENAS_ALL);
      done = asp_je_purge() == 0;
      break;
    case ASP_ALLOCATOR_TCMALLOC:
      snprintf(action, sizeof(action), "MallocExtension_ReleaseFreeMemory()");
      done = asp_tc_release_free_memory() == 0;
      break;
    case ASP_ALLOCATOR_MIMALLOC:
      snprintf(action, sizeof(action), "mi_collect(true)");
      done = asp_mi_collect(1) == 0;
      break;
    default:
      break;
  }
  if (!done) return send_error(fd, "ENOALLOCATOR", "this process's allocator has no release call allocscope knows");
  int64_t duration = asp_monotonic_ns() - start;
  double after = rss_bytes();
  asw_writer w;
  asw_init(&w, response, sizeof(response));
  write_head(&w, "trim");
  asw_key(&w, "allocator", 0);
  asw_string(&w, asp_allocator_name(a->kind));
  asw_key(&w, "action", 0);
  asw_string(&w, action);
  asw_key(&w, "rssBeforeBytes", 0);
  asw_number(&w, before);
  asw_key(&w, "rssAfterBytes", 0);
  asw_number(&w, after);
  asw_key(&w, "durationNs", 0);
  asw_number(&w, (double)duration);
  return finish(fd, &w);
}

/* stats-text: the allocator's own report, escaped into a JSON string of bounded size. */
typedef struct {
  char *text;
  size_t len;
  size_t cap;
} growing_text;

static void append_text(void *opaque, const char *text) {
  growing_text *g = opaque;
  size_t n = strlen(text);
  if (g->text == NULL || g->len + n + 1 > g->cap) {
    size_t cap = g->cap == 0 ? 64 * 1024 : g->cap;
    while (g->len + n + 1 > cap) cap *= 2;
    if (cap > MAX_STATS_TEXT) return; /* truncated: better than unbounded */
    char *grown = realloc(g->text, cap);
    if (grown == NULL) return;
    g->text = grown;
    g->cap = cap;
  }
  memcpy(g->text + g->len, text, n + 1);
  g->len += n;
}

static int answer_stats_text(int fd, const asp_allocator *a) {
  /* This answer mallocs its buffers: never while the host runs lock-free. */
  if (host_single_threaded()) return send_error(fd, "EUNSUPPORTED", single_threaded_refusal);
  growing_text g = {NULL, 0, 0};
  const char *format = "none";
  if (a->kind == ASP_ALLOCATOR_JEMALLOC) {
    format = "jemalloc-json";
    asp_je_stats_print(append_text, &g, "J");
  } else if (a->kind == ASP_ALLOCATOR_GLIBC) {
    format = "malloc_info-xml";
    size_t len = 0;
    char *xml = asp_glibc_malloc_info(&len);
    if (xml != NULL) {
      append_text(&g, xml);
      free(xml);
    }
  } else if (a->kind == ASP_ALLOCATOR_TCMALLOC) {
    format = "tcmalloc-text";
    static char text[256 * 1024];
    if (asp_tc_stats_text(text, (int)sizeof(text)) == 0) append_text(&g, text);
  }
  /* Escaping can grow text up to 6x; size the writer for it. */
  size_t cap = g.len * 6 + 1024;
  char *buf = malloc(cap);
  if (buf == NULL) {
    free(g.text);
    return send_error(fd, "EAGENT", "out of memory for the stats text");
  }
  asw_writer w;
  asw_init(&w, buf, cap);
  write_head(&w, "stats-text");
  asw_key(&w, "format", 0);
  asw_string(&w, format);
  asw_key(&w, "text", 0);
  asw_string_n(&w, g.text != NULL ? g.text : "", g.len);
  int rc = finish(fd, &w);
  free(buf);
  free(g.text);
  return rc;
}

/* ---- serving ---- */

static int peer_allowed(int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  return cred.uid == geteuid() || cred.uid == 0;
}

static void serve_connection(int fd) {
  struct timeval timeout = {IO_TIMEOUT_SECONDS, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (!peer_allowed(fd)) {
    send_error(fd, "EACCES", "only the process's own user or root may read its allocator");
    return;
  }
  asp_allocator allocator;
  asp_detect_allocator(&allocator);
  char line[ASW_MAX_REQUEST + 2];
  size_t used = 0;
  struct timespec deadline;
  deadline_in(&deadline, REQUEST_DEADLINE_MS);
  for (int served = 0; served < MAX_REQUESTS_PER_CONNECTION;) {
    if (!timeout_until(fd, SO_RCVTIMEO, &deadline)) return;
    ssize_t n = recv(fd, line + used, sizeof(line) - 1 - used, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* EOF, timeout or error: the connection ends, the host is untouched */
    used += (size_t)n;
    char *newline;
    while ((newline = memchr(line, '\n', used)) != NULL && served < MAX_REQUESTS_PER_CONNECTION) {
      size_t len = (size_t)(newline - line);
      asw_request request;
      asw_parse_request(line, len, &request);
      int rc;
      switch (request.op) {
        case ASW_OP_INFO: rc = answer_info(fd, &allocator); break;
        case ASW_OP_SNAPSHOT: rc = answer_snapshot(fd, &allocator, request.with_status); break;
        case ASW_OP_TRIM: rc = answer_trim(fd, &allocator, request.pad); break;
        case ASW_OP_STATS_TEXT: rc = answer_stats_text(fd, &allocator); break;
        default: rc = send_error(fd, "EPROTO", request.error != NULL ? request.error : "invalid request");
      }
      if (rc != 0) return;
      served++;
      deadline_in(&deadline, REQUEST_DEADLINE_MS);
      used -= len + 1;
      memmove(line, newline + 1, used);
    }
    if (used >= sizeof(line) - 1) {
      send_error(fd, "EPROTO", "request longer than 4096 bytes");
      /* Closing with the rest of the request unread would reset the connection, and the client
         could lose the answer to ECONNRESET. Say we are done, then discard what is still coming
         until the client closes or the request deadline passes (bounded: one buffer per recv). */
      shutdown(fd, SHUT_WR);
      deadline_in(&deadline, REQUEST_DEADLINE_MS);
      while (timeout_until(fd, SO_RCVTIMEO, &deadline)) {
        ssize_t drained = recv(fd, line, sizeof(line), 0);
        if (drained == 0 || (drained < 0 && errno != EINTR)) break;
      }
      return;
    }
  }
}

static void *serve(void *unused) {
  (void)unused;
  while (!__atomic_load_n(&decided, __ATOMIC_ACQUIRE)) {
    struct timespec pause = {0, 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  for (;;) {
    int client = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* The host is short of descriptors or memory: step back instead of spinning. */
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
        continue;
      }
      return NULL; /* the listening socket is gone */
    }
    if (kept_single_threaded != NULL && follow_host_credentials() != 0) {
      /* Never serve with credentials the host gave up. Stop for good, without exiting the thread
         (an exiting thread runs glibc's thread-exit code, which is not ours to run meanwhile). */
      close(client);
      close(listen_fd);
      unlink(socket_path);
      for (;;) {
        struct timespec hour = {3600, 0};
        nanosleep(&hour, NULL);
      }
    }
    serve_connection(client);
    close(client);
  }
}

static void start_agent(int in_fork_child) {
  const char *disabled = getenv("ALLOCSCOPE_AGENT_DISABLE");
  if (disabled != NULL && disabled[0] == '1') return;
  listen_fd = open_socket();
  if (listen_fd < 0) return;
  char *keep = single_threaded_flag_to_keep(in_fork_child);
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous); /* the new thread inherits this mask */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  if (pthread_create(&thread, &attr, serve, NULL) == 0) {
    pthread_setname_np(thread, "allocscope");
    if (keep != NULL) {
      /* Still the only thread of the host's: nothing of the host's runs between pthread_create
         clearing the variable and this line setting it back. */
      kept_single_threaded = keep;
      __atomic_store_n(keep, 1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&decided, 1, __ATOMIC_RELEASE);
  } else {
    close(listen_fd);
    unlink(socket_path);
    listen_fd = -1;
  }
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
}

static void after_fork_in_child(void) {
  /* The inherited descriptor listens on the parent's socket; the agent thread did not survive
     the fork. Let go of the parent's socket (never unlink it: it is still the parent's) and
     serve this child on its own. */
  if (listen_fd >= 0) close(listen_fd);
  listen_fd = -1;
  served_pid = 0;
  kept_single_threaded = NULL;
  decided = 0;
  start_agent(1);
}

__attribute__((constructor)) static void agent_load(void) {
  pthread_atfork(NULL, NULL, after_fork_in_child);
  start_agent(0);
}

__attribute__((destructor)) static void agent_unload(void) {
  /* At exit, remove this process's socket (a forked child never removes its parent's). */
  if (served_pid == getpid() && socket_path[0] != '\0') unlink(socket_path);
}
