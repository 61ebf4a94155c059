/* libFuzzer target: the agent's request reader and its JSON string writer (native/agent/wire.c).
   The agent hands asw_parse_request every line a client sends (agent.c serve_connection), so any
   byte string is a possible input. Invariants checked beyond "no sanitizer report":
   - a valid request is protocol v1, and a trim's pad is 0 or more;
   - an invalid request always carries a reason (the agent sends it back as EPROTO);
   - the writer never writes past its buffer, keeps it NUL-terminated, and an escaped string that
     fits holds no raw control character (the response stays one JSON line). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../agent/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size heap copy: ASan then flags any read past len. */
  char *line = malloc(size == 0 ? 1 : size);
  if (line == NULL) return 0;
  if (size > 0) memcpy(line, data, size);

  asw_request request;
  asw_parse_request(line, size, &request);
  if (request.op == ASW_OP_INVALID) {
    if (request.error == NULL) abort();
  } else {
    if (request.version != ASW_VERSION) abort();
    if (request.op == ASW_OP_TRIM && request.pad < 0) abort();
  }

  /* The writer, over a buffer smaller than the worst case half of the time. */
  size_t cap = 1 + (size % 2 == 0 ? size * 6 + 2 : size);
  char *buf = malloc(cap);
  if (buf != NULL) {
    asw_writer w;
    asw_init(&w, buf, cap);
    asw_string_n(&w, line, size);
    if (w.len >= cap || buf[w.len] != '\0') abort();
    if (!w.overflow) {
      if (w.len < 2 || buf[0] != '"' || buf[w.len - 1] != '"') abort();
      for (size_t i = 0; i < w.len; i++) {
        if ((unsigned char)buf[i] < 0x20) abort();
      }
    }
    free(buf);
  }
  free(line);
  return 0;
}
