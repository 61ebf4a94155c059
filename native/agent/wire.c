#include "wire.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- request parsing: a tolerant reader of the few keys the protocol has ---- */

static const char *skip_space(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
  return p;
}

/* Finds "key" as an object key at any position and returns the first char of its value. */
static const char *value_of(const char *line, const char *end, const char *key) {
  size_t key_len = strlen(key);
  for (const char *p = line; p + key_len + 2 <= end; p++) {
    if (*p != '"' || (size_t)(end - p) < key_len + 2) continue;
    if (memcmp(p + 1, key, key_len) != 0 || p[key_len + 1] != '"') continue;
    const char *q = skip_space(p + key_len + 2, end);
    if (q < end && *q == ':') return skip_space(q + 1, end);
  }
  return NULL;
}

static int string_equals(const char *value, const char *end, const char *expected) {
  size_t n = strlen(expected);
  return value != NULL && value < end && *value == '"' && (size_t)(end - value) >= n + 2 &&
         memcmp(value + 1, expected, n) == 0 && value[n + 1] == '"';
}

static int read_integer(const char *value, const char *end, long long *out) {
  if (value == NULL || value >= end) return 0;
  long long sign = 1, n = 0;
  const char *p = value;
  if (*p == '-') {
    sign = -1;
    p++;
  }
  if (p >= end || *p < '0' || *p > '9') return 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++) {
    if (n > (1LL << 53)) return 0; /* beyond what JSON numbers carry exactly */
    n = n * 10 + (*p - '0');
  }
  *out = sign * n;
  return 1;
}

void asw_parse_request(const char *line, size_t len, asw_request *out) {
  memset(out, 0, sizeof(*out));
  out->op = ASW_OP_INVALID;
  if (line == NULL || len == 0) {
    out->error = "empty request";
    return;
  }
  if (len > ASW_MAX_REQUEST) {
    out->error = "request longer than 4096 bytes";
    return;
  }
  if (memchr(line, '\0', len) != NULL) {
    out->error = "request contains a NUL byte";
    return;
  }
  const char *end = line + len;
  const char *start = skip_space(line, end);
  while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
  if (start >= end || *start != '{' || end[-1] != '}') {
    out->error = "a request is one JSON object per line";
    return;
  }
  long long version = 0;
  if (!read_integer(value_of(start, end, "v"), end, &version)) {
    out->error = "missing \"v\" (protocol version)";
    return;
  }
  out->version = (int)version;
  if (version != ASW_VERSION) {
    out->error = "unsupported protocol version (this agent speaks v1)";
    return;
  }
  const char *op = value_of(start, end, "op");
  if (string_equals(op, end, "info")) {
    out->op = ASW_OP_INFO;
  } else if (string_equals(op, end, "snapshot")) {
    out->op = ASW_OP_SNAPSHOT;
    out->with_status = string_equals(value_of(start, end, "detail"), end, "full");
  } else if (string_equals(op, end, "trim")) {
    out->op = ASW_OP_TRIM;
    const char *pad = value_of(start, end, "pad");
    if (pad != NULL && (!read_integer(pad, end, &out->pad) || out->pad < 0)) {
      out->op = ASW_OP_INVALID;
      out->error = "\"pad\" must be a whole number of bytes, 0 or more";
    }
  } else if (string_equals(op, end, "stats-text")) {
    out->op = ASW_OP_STATS_TEXT;
  } else {
    out->error = "unknown \"op\" (info, snapshot, trim, stats-text)";
  }
}

/* ---- response writing ---- */

void asw_init(asw_writer *w, char *buf, size_t cap) {
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->overflow = 0;
  if (cap > 0) buf[0] = '\0';
}

static void put(asw_writer *w, const char *text, size_t n) {
  if (w->overflow) return;
  if (w->len + n + 1 > w->cap) {
    w->overflow = 1;
    return;
  }
  memcpy(w->buf + w->len, text, n);
  w->len += n;
  w->buf[w->len] = '\0';
}

void asw_raw(asw_writer *w, const char *text) { put(w, text, strlen(text)); }

void asw_string_n(asw_writer *w, const char *text, size_t n) {
  put(w, "\"", 1);
  for (size_t i = 0; i < n && !w->overflow; i++) {
    unsigned char c = (unsigned char)text[i];
    char escaped[8];
    if (c == '"' || c == '\\') {
      escaped[0] = '\\';
      escaped[1] = (char)c;
      put(w, escaped, 2);
    } else if (c == '\n') {
      put(w, "\\n", 2);
    } else if (c == '\t') {
      put(w, "\\t", 2);
    } else if (c < 0x20) {
      snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      put(w, escaped, 6);
    } else {
      put(w, (const char *)&text[i], 1);
    }
  }
  put(w, "\"", 1);
}

void asw_string(asw_writer *w, const char *text) { asw_string_n(w, text, strlen(text)); }

void asw_number(asw_writer *w, double value) {
  if (!isfinite(value)) {
    asw_raw(w, "null");
    return;
  }
  char text[40];
  /* %.17g round-trips a double; integral byte counts print as integers. */
  if (value == floor(value) && fabs(value) < 9007199254740992.0) {
    snprintf(text, sizeof(text), "%.0f", value);
  } else {
    snprintf(text, sizeof(text), "%.17g", value);
  }
  asw_raw(w, text);
}

void asw_key(asw_writer *w, const char *key, int first) {
  if (!first) put(w, ",", 1);
  asw_string(w, key);
  put(w, ":", 1);
}
