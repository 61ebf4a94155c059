/* The allocscope wire format, version 1 (README "Wire format"): one JSON request per line, one
   JSON response per line. The agent and the Node serve() speak it; lib/targets/agent.ts is the
   client. */
#ifndef ALLOCSCOPE_AGENT_WIRE_H_
#define ALLOCSCOPE_AGENT_WIRE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASW_VERSION 1
/* A request longer than this is refused (EPROTO): bounded work per request. */
#define ASW_MAX_REQUEST 4096

typedef enum { ASW_OP_INVALID = 0, ASW_OP_INFO, ASW_OP_SNAPSHOT, ASW_OP_TRIM, ASW_OP_STATS_TEXT } asw_op;

typedef struct {
  asw_op op;
  int version;       /* "v"; 0 when absent */
  int with_status;   /* snapshot: "detail":"full" */
  long long pad;     /* trim: "pad" (bytes), default 0 */
  const char *error; /* why the request is invalid, when op == ASW_OP_INVALID */
} asw_request;

/* Parses one request line (without the newline). Never reads past len; never allocates. */
void asw_parse_request(const char *line, size_t len, asw_request *out);

/* A JSON writer over a fixed buffer. Once it overflows, `overflow` is set and nothing more is
   written; the caller then answers with an error instead. */
typedef struct {
  char *buf;
  size_t cap;
  size_t len;
  int overflow;
} asw_writer;

void asw_init(asw_writer *w, char *buf, size_t cap);
void asw_raw(asw_writer *w, const char *text);
void asw_string(asw_writer *w, const char *text); /* quoted and escaped */
void asw_string_n(asw_writer *w, const char *text, size_t n);
void asw_number(asw_writer *w, double value);     /* null for NaN/inf */
void asw_key(asw_writer *w, const char *key, int first); /* ,"key": */

#ifdef __cplusplus
}
#endif
#endif
