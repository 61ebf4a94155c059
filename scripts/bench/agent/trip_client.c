/* Round trips to an agent from C, so the figure is the agent's and the kernel's, not a Node
   client's event loop: COUNT snapshot requests on one connection at a time (the agent serves 64
   per connection, then a new one is opened, as a long-lived client would), each timed from the
   request's write to its answer's newline. Prints the round trips in µs, one per line.
     trip_client SOCKET_PATH COUNT
   Built by run.js with gcc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int connect_to(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, path, sizeof(address.sun_path) - 1);
  if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) return -1;
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int count = atoi(argv[2]);
  static const char request[] = "{\"v\":1,\"op\":\"snapshot\"}\n";
  static char answer[1 << 16];
  int fd = -1, sent = 0;
  for (int i = 0; i < count; i++) {
    if (fd < 0 || sent == 64) {
      if (fd >= 0) close(fd);
      fd = connect_to(argv[1]);
      sent = 0;
      if (fd < 0) return 1;
    }
    double start = now_us();
    if (write(fd, request, sizeof(request) - 1) != (ssize_t)(sizeof(request) - 1)) return 1;
    sent++;
    size_t used = 0;
    for (;;) {
      ssize_t n = read(fd, answer + used, sizeof(answer) - used);
      if (n <= 0) return 1;
      used += (size_t)n;
      if (memchr(answer, '\n', used) != NULL) break;
    }
    printf("%.1f\n", now_us() - start);
  }
  return 0;
}
