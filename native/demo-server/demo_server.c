/*
 * allocscope's demo server: a small long-lived HTTP/1.1 server whose request pattern is known to
 * fragment malloc (issue 5), so `allocscope demo` can show allocators differ on the same load.
 *
 *   - worker threads (8 by default), each serving its own connections: under glibc each thread gets an
 *     arena of its own (up to 8 per core on 64-bit, mallopt(3) M_ARENA_MAX), which is what makes
 *     the pattern strong;
 *   - per request, temporaries whose total size is heavy-tailed with no small cap (Pareto, alpha
 *     1.1, 4 KiB up to 16 MiB), built from many small malloc'd parts (1 B to 16 KiB, all below
 *     glibc's mmap threshold, so they come from the arena heap), freed when the request ends;
 *   - one state kept across requests: a bounded cache of small slices (64 B - 1 KiB) per thread,
 *     a random older one evicted when full. The surviving slices sit among the temporaries'
 *     freed chunks, so the heap cannot shrink from its top (glibc trims only there, malloc(3)).
 * Even-sized or tightly capped temporaries plateau within seconds and show nothing; the heavy tail
 * keeps raising the high-water mark the slices pin.
 *
 * Usage: demo_server --port N [--threads 8] [--cache 2000] [--host 127.0.0.1]
 * Every request (any method, any path) is answered "200 OK" with the number of bytes it used.
 * Keep-alive: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
 * SIGTERM/SIGINT end it with status 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIN_REQUEST_BYTES 4096.0
#define MAX_REQUEST_BYTES (16.0 * 1048576.0)
#define PARETO_ALPHA 1.1
#define MAX_PART_BYTES 16384
#define MAX_HEADER_BYTES 8192
#define MAX_THREADS 64

struct worker {
  pthread_t thread;
  int epoll_fd;
  uint64_t rng_state;
  void **cache;
  size_t cache_used;
  size_t cache_entries;
};

struct connection {
  int fd;
  size_t used;
  char buffer[MAX_HEADER_BYTES];
};

/* splitmix64: deterministic per thread, so every allocator sees the same request sequence. */
static uint64_t next_random(struct worker *w) {
  uint64_t z = (w->rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double uniform(struct worker *w) { return (double)(next_random(w) >> 11) * (1.0 / 9007199254740992.0); }

/* The request's temporaries: Pareto total, small parts, all alive until the request ends. */
static size_t handle_request(struct worker *w) {
  double total = MIN_REQUEST_BYTES / pow(1.0 - uniform(w), 1.0 / PARETO_ALPHA);
  if (total > MAX_REQUEST_BYTES) total = MAX_REQUEST_BYTES;
  size_t left = (size_t)total;
  size_t used = left;
  size_t capacity = 64, count = 0;
  char **parts = malloc(capacity * sizeof *parts);
  if (parts == NULL) return 0;
  while (left > 0) {
    double r = uniform(w);
    size_t part = 1 + (size_t)(r * uniform(w) * MAX_PART_BYTES);
    if (part > left) part = left;
    if (count == capacity) {
      char **grown = realloc(parts, 2 * capacity * sizeof *parts);
      if (grown == NULL) break;
      parts = grown;
      capacity *= 2;
    }
    char *p = malloc(part);
    if (p == NULL) break;
    memset(p, 1, part); /* touched: resident, as a real request's data would be */
    parts[count++] = p;
    left -= part;
  }
  /* The state that outlives the request: a small slice, evicting a random older one when full. */
  size_t slice_bytes = 64 + (size_t)(uniform(w) * 960);
  char *slice = malloc(slice_bytes);
  if (slice != NULL) {
    memset(slice, 2, slice_bytes);
    if (w->cache_used < w->cache_entries) {
      w->cache[w->cache_used++] = slice;
    } else if (w->cache_entries > 0) {
      size_t victim = (size_t)(uniform(w) * (double)w->cache_entries);
      free(w->cache[victim]);
      w->cache[victim] = slice;
    } else {
      free(slice);
    }
  }
  for (size_t i = 0; i < count; i++) free(parts[i]);
  free(parts);
  return used;
}

static int write_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t n = send(fd, data, length, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    data += n;
    length -= (size_t)n;
  }
  return 0;
}

/* True when the header block asks to keep the connection open. */
static int keep_alive(const char *headers, size_t length) {
  int http10 = length >= 8 && memmem(headers, length, "HTTP/1.0", 8) != NULL;
  const char *line = headers;
  const char *end = headers + length;
  while (line < end) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (eol == NULL) eol = end;
    if ((size_t)(eol - line) > 11 && strncasecmp(line, "connection:", 11) == 0) {
      /* Header values are case-insensitive (RFC 9110 §7.6.1): ab -k sends "Keep-Alive". */
      char value[64];
      size_t value_length = (size_t)(eol - line) - 11;
      if (value_length >= sizeof value) value_length = sizeof value - 1;
      memcpy(value, line + 11, value_length);
      value[value_length] = '\0';
      if (strcasestr(value, "close") != NULL) return 0;
      if (strcasestr(value, "keep-alive") != NULL) return 1;
    }
    line = eol + 1;
  }
  return !http10;
}

static void close_connection(struct worker *w, struct connection *c) {
  epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

/* Reads what is there and answers every complete request in the buffer (pipelining allowed). */
static void serve_readable(struct worker *w, struct connection *c) {
  ssize_t n = recv(c->fd, c->buffer + c->used, sizeof c->buffer - c->used, 0);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    close_connection(w, c);
    return;
  }
  c->used += (size_t)n;
  for (;;) {
    char *end = memmem(c->buffer, c->used, "\r\n\r\n", 4);
    if (end == NULL) {
      if (c->used == sizeof c->buffer) {
        static const char too_large[] = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        write_all(c->fd, too_large, sizeof too_large - 1);
        close_connection(w, c);
      }
      return;
    }
    size_t header_length = (size_t)(end - c->buffer) + 4;
    int keep = keep_alive(c->buffer, header_length);
    size_t bytes = handle_request(w);
    char body[32], response[192];
    int body_length = snprintf(body, sizeof body, "%zu\n", bytes);
    int length = snprintf(response, sizeof response,
                          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s",
                          body_length, keep ? "keep-alive" : "close", body);
    if (write_all(c->fd, response, (size_t)length) != 0 || !keep) {
      close_connection(w, c);
      return;
    }
    memmove(c->buffer, c->buffer + header_length, c->used - header_length);
    c->used -= header_length;
  }
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(w->epoll_fd, events, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return NULL;
    for (int i = 0; i < n; i++) serve_readable(w, events[i].data.ptr);
  }
}

static void on_stop(int signal_number) {
  (void)signal_number;
  _exit(0);
}

static long number_arg(const char *name, const char *value, long min, long max) {
  char *end = NULL;
  long n = value == NULL ? -1 : strtol(value, &end, 10);
  if (value == NULL || *value == '\0' || *end != '\0' || n < min || n > max) {
    fprintf(stderr, "demo_server: %s takes a whole number from %ld to %ld\n", name, min, max);
    exit(2);
  }
  return n;
}

int main(int argc, char **argv) {
  long port = -1, threads = 8, cache_entries = 2000;
  const char *host = "127.0.0.1";
  for (int i = 1; i < argc; i++) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--port") == 0) port = number_arg("--port", value, 0, 65535), i++;
    else if (strcmp(argv[i], "--threads") == 0) threads = number_arg("--threads", value, 1, MAX_THREADS), i++;
    else if (strcmp(argv[i], "--cache") == 0) cache_entries = number_arg("--cache", value, 0, 10000000), i++;
    else if (strcmp(argv[i], "--host") == 0 && value != NULL) host = value, i++;
    else {
      fprintf(stderr, "usage: demo_server --port N [--threads 8] [--cache 2000] [--host 127.0.0.1]\n");
      return 2;
    }
  }
  if (port < 0) {
    fprintf(stderr, "demo_server: --port is required\n");
    return 2;
  }
  signal(SIGTERM, on_stop);
  signal(SIGINT, on_stop);
  signal(SIGPIPE, SIG_IGN);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
    fprintf(stderr, "demo_server: --host must be an IPv4 address; got %s\n", host);
    return 2;
  }
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 128) != 0) {
    fprintf(stderr, "demo_server: cannot listen on %s:%ld: %s\n", host, port, strerror(errno));
    return 1;
  }

  static struct worker workers[MAX_THREADS];
  for (long t = 0; t < threads; t++) {
    workers[t].epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    workers[t].rng_state = 0x5eed0000ULL + (uint64_t)t;
    workers[t].cache_entries = (size_t)cache_entries;
    workers[t].cache = calloc((size_t)cache_entries + 1, sizeof(void *));
    if (workers[t].epoll_fd < 0 || workers[t].cache == NULL ||
        pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0) {
      fprintf(stderr, "demo_server: cannot start worker %ld\n", t);
      return 1;
    }
  }
  for (unsigned long accepted = 0;; accepted++) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) { usleep(10000); continue; } /* wait for a close, do not spin */
      fprintf(stderr, "demo_server: accept failed: %s\n", strerror(errno));
      return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct worker *w = &workers[accepted % (unsigned long)threads];
    struct connection *c = malloc(sizeof *c);
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->used = 0;
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
      close(fd);
      free(c);
    }
  }
}
