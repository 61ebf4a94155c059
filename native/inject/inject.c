/*
 * allocscope_inject: loads a library into a running process (x86_64 Linux, glibc) without gdb,
 * so that the injector itself may die at any instant (SIGKILL, the OOM killer, a cgroup kill)
 * and the target still runs on. Used by `allocscope attach` (lib/targets/attach.ts).
 *
 *   allocscope_inject PID LIBRARY SAFE_POINT_MS CALL_MS
 *
 * Progress is one JSON object a line on fd 3 ({"stage": ...}), the same stages as the gdb
 * script (lib/targets/attach-script.ts); EOF on fd 3 means "cancelled: inject nothing, detach".
 *
 * Why not gdb's inferior call: gdb runs dlopen() with a return address on a breakpoint that only
 * gdb can handle, stops threads with SIGSTOP, and waits for safe points with breakpoints in
 * malloc. A gdb killed at the wrong instant leaves a target that dies on that breakpoint (SIGTRAP)
 * or stays stopped (seen in CI; README "Reliability"). Here every instant is safe:
 * - PTRACE_SEIZE + PTRACE_INTERRUPT stop one thread at a time and send no signal (ptrace(2));
 *   a tracer that dies is detached by the kernel and its stopped tracee resumes as it was;
 * - no breakpoint is ever written; the safe point is found by sampling: a thread blocked in a
 *   plain blocking system call, or running the program's own code (never in libc, the loader,
 *   an allocator or the C++ runtime, which may hold the locks dlopen takes);
 * - the call is a trampoline (the "cave") written into the unused tail of an executable mapping:
 *   it saves every register, the extended (XSAVE) state and errno, calls dlopen, restores them all
 *   and jumps back to where the thread was. The thread is redirected by one PTRACE_SETREGS and
 *   the tracer detaches at once: from then on nothing depends on the injector. Before that one
 *   call the target is untouched (the cave is code nobody runs).
 * The cave stays in place afterwards (a few hundred bytes of an otherwise unused page).
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "caves.h"

#if !defined(__x86_64__)
#error "allocscope_inject supports x86_64 only (other machines attach with gdb)"
#endif

/* ---- the cave: position-independent code followed by its data ---------------------------- */

/* Stack slots after the pushes below, from the lowest address: r15 ... rax, then the flags. */
#define SAVED_RAX_SLOT 112

extern const unsigned char cave_begin[], cave_end[], cave_dlopen[], cave_dlerror[],
    cave_errno_location[], cave_resume_rip[], cave_resume_rax[], cave_xsave_size[],
    cave_results[], cave_path[];

__asm__(
    ".pushsection .rodata\n"
    ".balign 16\n"
    "cave_begin:\n"
    "  lea -128(%rsp), %rsp\n"          /* step over the red zone the thread may be using */
    "  pushfq\n"
    "  cld\n"                           /* the C ABI wants DF clear at calls; popfq restores it */
    "  push %rax\n  push %rbx\n  push %rcx\n  push %rdx\n  push %rsi\n  push %rdi\n  push %rbp\n"
    "  push %r8\n  push %r9\n  push %r10\n  push %r11\n  push %r12\n  push %r13\n  push %r14\n"
    "  push %r15\n"
    "  mov %rsp, %rbx\n"
    "  sub cave_xsave_size(%rip), %rsp\n"
    "  and $-64, %rsp\n"                /* XSAVE wants 64-byte alignment; also 16 for the calls */
    "  mov %rsp, %r12\n"
    "  xor %eax, %eax\n"                /* XRSTOR faults on a header with stray bytes: zero it */
    "  mov %rax, 512(%r12)\n  mov %rax, 520(%r12)\n  mov %rax, 528(%r12)\n  mov %rax, 536(%r12)\n"
    "  mov %rax, 544(%r12)\n  mov %rax, 552(%r12)\n  mov %rax, 560(%r12)\n  mov %rax, 568(%r12)\n"
    "  mov $-1, %eax\n  mov $-1, %edx\n"
    "  xsave64 (%r12)\n"                /* every enabled state component: x87, SSE, AVX, AVX-512 */
    "  call *cave_errno_location(%rip)\n"
    "  mov %rax, %r14\n"
    "  mov (%r14), %r13d\n"             /* errno: the thread may be about to read it */
    "  lea cave_path(%rip), %rdi\n"
    "  mov $0x1002, %esi\n"             /* RTLD_NOW | RTLD_NODELETE: the agent is never unloaded */
    "  call *cave_dlopen(%rip)\n"
    "  mov cave_results(%rip), %rcx\n"
    "  mov %rax, 8(%rcx)\n"            /* results[1]: the handle */
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  call *cave_dlerror(%rip)\n"
    "  mov cave_results(%rip), %rcx\n"
    "  mov %rax, 16(%rcx)\n"           /* results[2]: dlerror's text */
    "1:\n"
    "  mov %r13d, (%r14)\n"
    "  mov $-1, %eax\n  mov $-1, %edx\n"
    "  xrstor64 (%r12)\n"
    "  mov %rbx, %rsp\n"
    "  mov cave_resume_rax(%rip), %rax\n"
    "  mov %rax, 112(%rsp)\n"           /* SAVED_RAX_SLOT: a restarted system call needs its number */
    "  mov cave_results(%rip), %rcx\n"
    "  movq $1, (%rcx)\n"              /* results[0]: done; rcx is popped back below */
    "  pop %r15\n  pop %r14\n  pop %r13\n  pop %r12\n  pop %r11\n  pop %r10\n  pop %r9\n  pop %r8\n"
    "  pop %rbp\n  pop %rdi\n  pop %rsi\n  pop %rdx\n  pop %rcx\n  pop %rbx\n  pop %rax\n"
    "  popfq\n"
    "  lea 128(%rsp), %rsp\n"           /* lea leaves the flags alone */
    "  jmp *cave_resume_rip(%rip)\n"
    ".balign 8\n"
    "cave_dlopen: .quad 0\n"
    "cave_dlerror: .quad 0\n"
    "cave_errno_location: .quad 0\n"
    "cave_resume_rip: .quad 0\n"
    "cave_resume_rax: .quad 0\n"
    "cave_xsave_size: .quad 0\n"
    "cave_results: .quad 0\n"         /* where the results go: the code cave is not writable */
    "cave_path:\n"
    "cave_end:\n"
    ".popsection\n");

#define CAVE_OFFSET(label) ((size_t)((label) - cave_begin))

/* ---- progress on fd 3 ---------------------------------------------------------------------- */

static int channel = 3;

static void json_string(char *out, size_t size, const char *text) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p && n + 7 < size; p++) {
    if (*p == '"' || *p == '\\') {
      out[n++] = '\\';
      out[n++] = (char)*p;
    } else if (*p < 0x20) {
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", *p);
    } else {
      out[n++] = (char)*p;
    }
  }
  out[n] = '\0';
}

/* One line: {"stage":STAGE, FIELDS}; FIELDS is preformatted JSON members (or empty). */
static void mark(const char *stage, const char *fields_format, ...) {
  char fields[1536] = "";
  if (fields_format != NULL) {
    va_list args;
    va_start(args, fields_format);
    vsnprintf(fields, sizeof fields, fields_format, args);
    va_end(args);
  }
  char line[1700];
  int n = snprintf(line, sizeof line, "{\"stage\":\"%s\"%s%s}\n", stage, fields[0] ? "," : "", fields);
  if (n > 0 && (size_t)n < sizeof line) {
    /* MSG_NOSIGNAL is for sockets; fd 3 may be a pipe: SIGPIPE is ignored in main() instead. */
    ssize_t ignored = write(channel, line, (size_t)n);
    (void)ignored;
  }
}

static void fail(const char *code, const char *format, ...) {
  char message[1024], escaped[1400];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  json_string(escaped, sizeof escaped, message);
  mark("error", "\"code\":\"%s\",\"message\":\"%s\"", code, escaped);
}

/* The caller closed fd 3 (cancel), or died. fd 3 is the read-write socket of Node's 'pipe'
 * stdio; run by hand with fd 3 a file or a terminal, it is no cancel channel at all. */
static bool cancelled(void) {
  static bool listening = true;
  if (!listening) return false;
  struct pollfd p = {.fd = channel, .events = POLLIN};
  if (poll(&p, 1, 0) <= 0) return false;
  char byte;
  ssize_t got = read(channel, &byte, 1);
  if (got == 0) return true;
  if (got < 0 && errno != EAGAIN && errno != EINTR) {
    if (errno == ECONNRESET) return true;
    listening = false; /* not readable: no cancel channel */
  }
  return false;
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the target's memory map ---------------------------------------------------------------- */

typedef inj_mapping mapping_t;

typedef struct {
  mapping_t *items;
  size_t count;
} maps_t;

static bool read_maps(pid_t pid, maps_t *maps) {
  char name[64];
  snprintf(name, sizeof name, "/proc/%d/maps", (int)pid);
  FILE *file = fopen(name, "re");
  if (file == NULL) return false;
  size_t capacity = 256;
  maps->items = calloc(capacity, sizeof *maps->items);
  maps->count = 0;
  char line[sizeof maps->items->path + 256];
  while (maps->items != NULL && fgets(line, sizeof line, file) != NULL) {
    mapping_t m;
    if (!inj_parse_maps_line(line, &m)) continue;
    if (maps->count == capacity) {
      capacity *= 2;
      mapping_t *grown = realloc(maps->items, capacity * sizeof *grown);
      if (grown == NULL) break;
      maps->items = grown;
    }
    maps->items[maps->count++] = m;
  }
  fclose(file);
  return maps->items != NULL && maps->count > 0;
}

static const mapping_t *mapping_of(const maps_t *maps, uint64_t address) {
  for (size_t i = 0; i < maps->count; i++) {
    if (address >= maps->items[i].start && address < maps->items[i].end) return &maps->items[i];
  }
  return NULL;
}

/* Code that may hold the locks dlopen takes (the loader's, malloc's) or be half-way through them:
 * the C library, the loader, the allocators, the C++ runtime and its unwinder. */
static bool runtime_library(const char *path) {
  static const char *const names[] = {"/libc.so", "/libc-", "/ld-linux", "/ld-musl", "/libc.musl", "/libpthread", "/libdl.so",
                                      "/libjemalloc", "/libtcmalloc", "/libmimalloc", "/libstdc++", "/libgcc_s", "/liballocscope_agent"};
  const char *base = strrchr(path, '/');
  if (base == NULL) return true; /* [vdso], [heap], anonymous JIT code: not the program's own */
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    if (strncmp(base, names[i], strlen(names[i])) == 0) return true;
  }
  return false;
}

/* ---- reading and writing the target ------------------------------------------------------- */

static int target_memory = -1;

static bool read_target(uint64_t address, void *buffer, size_t size) {
  return pread(target_memory, buffer, size, (off_t)address) == (ssize_t)size;
}

static bool write_target(uint64_t address, const void *buffer, size_t size) {
  if (pwrite(target_memory, buffer, size, (off_t)address) != (ssize_t)size) return false;
  unsigned char check[4096];
  for (size_t done = 0; done < size; done += sizeof check) {
    size_t chunk = size - done < sizeof check ? size - done : sizeof check;
    if (!read_target(address + done, check, chunk) || memcmp(check, (const unsigned char *)buffer + done, chunk) != 0) return false;
  }
  return true;
}

/* ---- symbols: the target's libc is this process's libc, at another address ---------------- */

typedef struct {
  uint64_t dlopen, dlerror, errno_location;
} calls_t;

static bool same_file(const char *path, const mapping_t *m) {
  struct stat st;
  return stat(path, &st) == 0 && (uint64_t)st.st_ino == m->inode;
}

static bool find_calls(const maps_t *maps, calls_t *calls, char *why, size_t why_size) {
  /* libc's own entry points, not whatever interposes them here (ASan intercepts dlopen). */
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  void *our_dlopen = libc != NULL ? dlsym(libc, "dlopen") : NULL;
  Dl_info info;
  if (our_dlopen == NULL || dladdr(our_dlopen, &info) == 0 || info.dli_fname == NULL) {
    snprintf(why, why_size, "cannot locate dlopen in the injector's own C library");
    return false;
  }
  char our_libc[PATH_MAX];
  if (realpath(info.dli_fname, our_libc) == NULL) snprintf(our_libc, sizeof our_libc, "%s", info.dli_fname);
  for (size_t i = 0; i < maps->count; i++) {
    const mapping_t *m = &maps->items[i];
    if (m->offset != 0 || m->path[0] != '/' || !same_file(our_libc, m)) continue;
    uint64_t base = m->start;
    uint64_t ours = (uint64_t)(uintptr_t)info.dli_fbase;
    calls->dlopen = base + ((uint64_t)(uintptr_t)our_dlopen - ours);
    calls->dlerror = base + ((uint64_t)(uintptr_t)dlsym(libc, "dlerror") - ours);
    calls->errno_location = base + ((uint64_t)(uintptr_t)dlsym(libc, "__errno_location") - ours);
    return true;
  }
  snprintf(why, why_size, "the target does not run this system's C library (%s): a static, musl or other libc has no dlopen to call this way", our_libc);
  return false;
}

/* ---- the caves: unused tails of a library's PT_LOAD segments ------------------------------ */

#define RESULT_BYTES 24 /* done, handle, dlerror text: three words the cave writes */

typedef struct {
  uint64_t code; /* in the executable segment, after its last byte of file contents */
  uint64_t results; /* in the writable segment, after its last byte (p_memsz), in the bss page */
} caves_t;

/* `size` bytes at `address` are all blank (zero, or int3 fill) and inside one mapping with these
 * permissions: nobody uses them, and a previous injection's cave is not taken again. */
static bool blank(const maps_t *maps, uint64_t address, size_t size, const char *perms) {
  const mapping_t *m = mapping_of(maps, address);
  if (m == NULL || strcmp(m->perms, perms) != 0 || address + size > m->end) return false;
  unsigned char *bytes = malloc(size);
  bool is_blank = bytes != NULL && read_target(address, bytes, size);
  for (size_t b = 0; is_blank && b < size; b++) is_blank = bytes[b] == bytes[0] && (bytes[0] == 0 || bytes[0] == 0xcc);
  free(bytes);
  return is_blank;
}

/* The first library whose two caves (caves.h) are blank: the code cave is written through
 * /proc/PID/mem (FOLL_FORCE); the results cave must be writable by the thread itself. */
static bool find_caves(const maps_t *maps, size_t code_size, caves_t *caves) {
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  caves->code = caves->results = 0;
  for (size_t i = 0; i < maps->count; i++) {
    const mapping_t *m = &maps->items[i];
    if (strcmp(m->perms, "r-xp") != 0 || m->path[0] != '/') continue;
    /* Not the loader: its minimal malloc hands out the rest of its data segment's last page
     * (glibc elf/dl-minimal-malloc.c: alloc_ptr starts at &_end). */
    const char *base = strrchr(m->path, '/');
    if (strncmp(base, "/ld-linux", 9) == 0 || strncmp(base, "/ld-musl", 8) == 0) continue;
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    Elf64_Ehdr header;
    Elf64_Phdr ph[64];
    bool found = pread(fd, &header, sizeof header, 0) == sizeof header && memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 &&
                 header.e_ident[EI_CLASS] == ELFCLASS64 && header.e_phentsize == sizeof(Elf64_Phdr) && header.e_phnum <= 64 &&
                 pread(fd, ph, header.e_phnum * sizeof *ph, (off_t)header.e_phoff) == (ssize_t)(header.e_phnum * sizeof *ph) &&
                 inj_segment_caves(&header, ph, header.e_phnum, m, page, code_size, RESULT_BYTES, &caves->code, &caves->results) &&
                 blank(maps, caves->results, RESULT_BYTES, "rw-p") && blank(maps, caves->code, code_size, "r-xp");
    close(fd);
    if (found) return true;
  }
  return false;
}

/* ---- safe points ----------------------------------------------------------------------------- */

/* Plain blocking calls a program makes to wait (never made by the loader or malloc while they
 * hold a lock). read and futex are left out: the loader reads files, and a futex wait may be a
 * thread waiting for a lock while it holds another. */
static bool blocking_syscall(long number) {
  switch (number) {
    case SYS_epoll_wait: case SYS_epoll_pwait: case 441 /* epoll_pwait2 */: case SYS_poll: case SYS_ppoll:
    case SYS_select: case SYS_pselect6: case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_pause:
    case SYS_accept: case SYS_accept4: case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg: case SYS_wait4:
    case SYS_waitid: case SYS_rt_sigsuspend: case SYS_rt_sigtimedwait: case SYS_io_getevents: case SYS_msgrcv:
      return true;
    default:
      return false;
  }
}

static const char *syscall_name(long number) {
  switch (number) {
    case SYS_epoll_wait: return "epoll_wait";
    case SYS_epoll_pwait: return "epoll_pwait";
    case 441: return "epoll_pwait2";
    case SYS_poll: return "poll";
    case SYS_ppoll: return "ppoll";
    case SYS_select: return "select";
    case SYS_pselect6: return "pselect6";
    case SYS_nanosleep: return "nanosleep";
    case SYS_clock_nanosleep: return "clock_nanosleep";
    case SYS_pause: return "pause";
    case SYS_accept: return "accept";
    case SYS_accept4: return "accept4";
    case SYS_recvfrom: return "recvfrom";
    case SYS_recvmsg: return "recvmsg";
    case SYS_recvmmsg: return "recvmmsg";
    case SYS_wait4: return "wait4";
    case SYS_waitid: return "waitid";
    case SYS_rt_sigsuspend: return "sigsuspend";
    case SYS_rt_sigtimedwait: return "sigtimedwait";
    case SYS_io_getevents: return "io_getevents";
    case SYS_msgrcv: return "msgrcv";
    default: return "a system call";
  }
}

/* Kernel-internal restart codes (include/linux/errno.h): the system call is re-run on resume. */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/* Room dlopen needs below the thread's stack pointer (the loader's frames, XSAVE area, slack). */
#define STACK_NEEDED (64 * 1024)

typedef struct {
  uint64_t resume_rip, resume_rax;
  char how[128];
} safe_point_t;

/* Is this stopped thread at a safe point? If so, where it must resume after the cave. */
static bool safe_point(const maps_t *maps, const struct user_regs_struct *regs, safe_point_t *point) {
  const mapping_t *stack = mapping_of(maps, regs->rsp);
  if (stack == NULL || (regs->rsp - STACK_NEEDED < stack->start && strcmp(stack->path, "[stack]") != 0)) return false;
  const mapping_t *code = mapping_of(maps, regs->rip);
  if (code == NULL || code->perms[2] != 'x') return false;
  long number = (long)regs->orig_rax;
  if (number >= 0) {
    /* In a system call: the interrupt ended it with -EINTR or a restart code. */
    unsigned char insn[2];
    if (!blocking_syscall(number) || !read_target(regs->rip - 2, insn, 2) || insn[0] != 0x0f || insn[1] != 0x05) return false;
    long result = (long)regs->rax;
    point->resume_rip = regs->rip;
    point->resume_rax = regs->rax;
    if (result == -ERESTARTSYS || result == -ERESTARTNOINTR || result == -ERESTARTNOHAND) {
      point->resume_rip = regs->rip - 2; /* run the call again, with its own arguments */
      point->resume_rax = (uint64_t)number;
    } else if (result == -ERESTART_RESTARTBLOCK) {
      point->resume_rip = regs->rip - 2;
      point->resume_rax = SYS_restart_syscall; /* nanosleep & co. resume with their time left */
    }
    snprintf(point->how, sizeof point->how, "blocked in %s", syscall_name(number));
    return true;
  }
  if (runtime_library(code->path)) return false;
  point->resume_rip = regs->rip;
  point->resume_rax = regs->rax;
  const char *base = strrchr(code->path, '/');
  snprintf(point->how, sizeof point->how, "running its own code (%s)", base + 1);
  return true;
}

/* ---- ptrace, one thread at a time ------------------------------------------------------------- */

typedef enum { STOPPED, PASSED_SIGNAL, GONE } stop_t;

/* Seize and interrupt one thread; on STOPPED it is in an interrupt stop, ours to inspect. */
static stop_t stop_thread(pid_t tid, int *error) {
  *error = 0;
  if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
    *error = errno;
    return GONE;
  }
  if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) {
    ptrace(PTRACE_DETACH, tid, 0, 0);
    return GONE;
  }
  for (;;) {
    int status;
    pid_t got = waitpid(tid, &status, __WALL);
    if (got < 0 && errno == EINTR) continue;
    if (got != tid || WIFEXITED(status) || WIFSIGNALED(status)) return GONE;
    if (!WIFSTOPPED(status)) continue;
    if ((status >> 16) == PTRACE_EVENT_STOP) {
      int signal = WSTOPSIG(status);
      if (signal == SIGTRAP) return STOPPED; /* our interrupt */
      ptrace(PTRACE_DETACH, tid, 0, 0); /* a group stop (someone's SIGSTOP): leave it as it is */
      return GONE;
    }
    /* A signal arrived first: hand it on untouched, and let go of this thread for now. */
    ptrace(PTRACE_DETACH, tid, 0, (void *)(uintptr_t)WSTOPSIG(status));
    return PASSED_SIGNAL;
  }
}

static size_t list_threads(pid_t pid, pid_t *tids, size_t capacity) {
  char name[64];
  snprintf(name, sizeof name, "/proc/%d/task", (int)pid);
  DIR *dir = opendir(name);
  size_t count = 0;
  if (dir == NULL) return 0;
  for (struct dirent *entry; (entry = readdir(dir)) != NULL && count < capacity;) {
    if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') tids[count++] = (pid_t)atoi(entry->d_name);
  }
  closedir(dir);
  return count;
}

/* Test hook: ALLOCSCOPE_INJECT_PAUSE_AT=STAGE makes the injector announce {"stage":"paused"} and
 * sleep there, so tests can kill it at an exact point (test/faults/profiler-killed.ts). */
static void pause_at(const char *stage) {
  const char *at = getenv("ALLOCSCOPE_INJECT_PAUSE_AT");
  if (at == NULL || strcmp(at, stage) != 0) return;
  mark("paused", "\"at\":\"%s\"", stage);
  sleep(60);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (fcntl(channel, F_GETFD) < 0) channel = 2;
  if (argc != 5) {
    fail("usage", "usage: allocscope_inject PID LIBRARY SAFE_POINT_MS CALL_MS");
    return 2;
  }
  pid_t pid = (pid_t)atoi(argv[1]);
  const char *library = argv[2];
  long long safe_point_ms = atoll(argv[3]), call_ms = atoll(argv[4]);
  if (pid <= 0 || library[0] != '/' || strlen(library) >= PATH_MAX || safe_point_ms <= 0 || call_ms <= 0) {
    fail("usage", "bad arguments: a pid, an absolute library path and two positive budgets in ms");
    return 2;
  }
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE) || !__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx)) {
    fail("unsupported", "this processor or kernel has no XSAVE, which the injected call needs to keep the thread's vector registers");
    return 1;
  }
  uint64_t xsave_size = ebx; /* CPUID.(EAX=0DH,ECX=0):EBX: the area for the features XCR0 enables */

  char name[64];
  snprintf(name, sizeof name, "/proc/%d/mem", (int)pid);
  maps_t maps = {0};
  char why[PATH_MAX + 256];
  calls_t calls;
  if (!read_maps(pid, &maps)) {
    fail("attach", "cannot read /proc/%d/maps: %s", (int)pid, strerror(errno));
    return 1;
  }

  /* Opening the memory needs what ptrace needs (PTRACE_MODE_ATTACH, Yama included: proc(5)); no
   * thread is stopped for it. A stop here would be wasted: an interrupted nanosleep is resumed
   * as restart_syscall, which the sampling below could no longer tell from a futex wait. */
  int error;
  target_memory = open(name, O_RDWR | O_CLOEXEC);
  if (target_memory < 0) {
    fail("attach", "cannot open %s: %s", name, strerror(errno));
    return 1;
  }
  pid_t tids[4096];
  size_t thread_count = list_threads(pid, tids, sizeof tids / sizeof *tids);
  mark("attached", "\"threads\":%zu", thread_count);
  pause_at("attached");

  if (!find_calls(&maps, &calls, why, sizeof why)) {
    fail("symbols", "%s", why);
    return 1;
  }
  size_t path_size = strlen(library) + 1;
  size_t cave_size = CAVE_OFFSET(cave_path) + path_size;
  caves_t caves = {0, 0};
  if (!find_caves(&maps, cave_size, &caves)) {
    fail("cave", "no library of pid %d has %zu unused bytes after its code and %d after its data to hold the call", (int)pid, cave_size, RESULT_BYTES);
    return 1;
  }
  unsigned char *code = calloc(1, cave_size);
  if (code == NULL) {
    fail("cave", "out of memory");
    return 1;
  }
  memcpy(code, cave_begin, CAVE_OFFSET(cave_end));
  memcpy(code + CAVE_OFFSET(cave_dlopen), &calls.dlopen, 8);
  memcpy(code + CAVE_OFFSET(cave_dlerror), &calls.dlerror, 8);
  memcpy(code + CAVE_OFFSET(cave_errno_location), &calls.errno_location, 8);
  memcpy(code + CAVE_OFFSET(cave_xsave_size), &xsave_size, 8);
  memcpy(code + CAVE_OFFSET(cave_results), &caves.results, 8);
  memcpy(code + CAVE_OFFSET(cave_path), library, path_size);
  uint64_t cave = caves.code;
  mark("symbols", "\"cave\":%" PRIu64 ",\"caveBytes\":%zu", cave, cave_size);
  if (cancelled()) return 0;

  /* Sample the threads until one is at a safe point; each is stopped for microseconds. */
  long long deadline = now_ms() + safe_point_ms;
  safe_point_t point;
  pid_t chosen = 0;
  struct user_regs_struct regs;
  unsigned rounds = 0;
  srand((unsigned)getpid());
  while (chosen == 0 && now_ms() < deadline && !cancelled()) {
    if (rounds++ > 0) {
      struct timespec nap = {0, (1 + rand() % 3) * 1000000L};
      nanosleep(&nap, NULL);
    }
    thread_count = list_threads(pid, tids, sizeof tids / sizeof *tids);
    if (thread_count == 0) break; /* the target exited */
    for (size_t i = 0; i < thread_count && chosen == 0; i++) {
      if (stop_thread(tids[i], &error) != STOPPED) {
        if (error == EPERM || error == EACCES) {
          fail("attach", "ptrace(PTRACE_SEIZE, %d): %s (another tracer, or no permission)", (int)tids[i], strerror(error));
          mark("detached", NULL);
          return 1;
        }
        continue;
      }
      if (ptrace(PTRACE_GETREGS, tids[i], 0, &regs) == 0) {
        if (mapping_of(&maps, regs.rip) == NULL) {
          free(maps.items);
          if (!read_maps(pid, &maps)) maps.count = 0; /* a library loaded since: look again */
        }
        if (safe_point(&maps, &regs, &point)) {
          chosen = tids[i];
          break; /* stays stopped */
        }
      }
      ptrace(PTRACE_DETACH, tids[i], 0, 0);
    }
  }
  if (chosen == 0) {
    if (!cancelled()) {
      fail("no-safe-point", "no thread of pid %d reached a safe point within %lld ms (%u samples): none slept in a plain blocking call or ran its own code outside the C library, the loader and the allocator",
           (int)pid, safe_point_ms, rounds);
    }
    mark("detached", NULL);
    return 1;
  }
  mark("safe-point", "\"thread\":%d,\"how\":\"%s\",\"samples\":%u", (int)chosen, point.how, rounds);
  pause_at("safe-point");
  if (cancelled()) {
    ptrace(PTRACE_DETACH, chosen, 0, 0);
    mark("detached", NULL);
    return 0;
  }

  memcpy(code + CAVE_OFFSET(cave_resume_rip), &point.resume_rip, 8);
  memcpy(code + CAVE_OFFSET(cave_resume_rax), &point.resume_rax, 8);
  if (!write_target(cave, code, cave_size)) {
    int saved = errno;
    ptrace(PTRACE_DETACH, chosen, 0, 0);
    fail("cave", "cannot write the call into pid %d at 0x%" PRIx64 ": %s", (int)pid, cave, strerror(saved));
    mark("detached", NULL);
    return 1;
  }
  pause_at("cave-written");
  /* The one step that changes the target: from here the thread runs the cave, tracer or not.
   * orig_rax = -1: the kernel must not also restart the interrupted call (the cave does). */
  regs.rip = cave;
  regs.orig_rax = (uint64_t)-1;
  if (ptrace(PTRACE_SETREGS, chosen, 0, &regs) != 0) {
    int saved = errno;
    ptrace(PTRACE_DETACH, chosen, 0, 0);
    fail("call", "ptrace(PTRACE_SETREGS) on thread %d: %s", (int)chosen, strerror(saved));
    mark("detached", NULL);
    return 1;
  }
  pause_at("redirected");
  struct timespec redirected;
  clock_gettime(CLOCK_MONOTONIC, &redirected);
  ptrace(PTRACE_DETACH, chosen, 0, 0);
  mark("detached", NULL);

  /* Wait for the cave's done flag (it runs in the target now, without us), looking every 0.1 ms:
   * the time the borrowed thread spent in the call is reported to within that. */
  long long call_deadline = now_ms() + call_ms;
  uint64_t results[3] = {0, 0, 0};
  while (now_ms() < call_deadline) {
    if (!read_target(caves.results, results, sizeof results)) break;
    if (results[0]) break;
    struct timespec nap = {0, 100000L};
    nanosleep(&nap, NULL);
  }
  struct timespec returned;
  clock_gettime(CLOCK_MONOTONIC, &returned);
  long long call_us = (returned.tv_sec - redirected.tv_sec) * 1000000LL + (returned.tv_nsec - redirected.tv_nsec) / 1000;
  if (!results[0]) {
    fail("timeout", "dlopen in pid %d had not returned within %lld ms; it runs on in the target", (int)pid, call_ms);
    return 1;
  }
  uint64_t error_text = results[2];
  if (results[1] == 0) {
    char text[512] = "no reason given", escaped[700];
    /* The message may end near the end of a page: shorter reads until one succeeds. */
    for (size_t size = sizeof text - 1; error_text != 0 && size >= 16; size /= 2) {
      if (read_target(error_text, text, size)) {
        text[size] = '\0';
        break;
      }
    }
    json_string(escaped, sizeof escaped, text);
    mark("error", "\"code\":\"dlopen\",\"message\":\"%s\"", escaped);
    return 1;
  }
  mark("loaded", "\"how\":\"%s\",\"callUs\":%lld,\"samples\":%u", point.how, call_us, rounds);
  return 0;
}
