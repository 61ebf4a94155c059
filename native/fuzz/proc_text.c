/* libFuzzer target: the C parsers of /proc text (native/probe/process_probe.c): status (key: value
   kB lines) and statm (three numbers). The agent and the addon read these files from the kernel,
   but the parsers must hold on any text: a kernel with new or missing lines, a truncated read.
   Invariants: status fields are -1 (absent or unparsable) or 0 and more; ids come four at once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../probe/process_probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The parsers take NUL-terminated text, as read_kept() produces it. */
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';

  asp_status status;
  asp_parse_status(text, &status);
  const int64_t fields[] = {status.vm_hwm_kb, status.vm_rss_kb, status.rss_anon_kb, status.rss_file_kb,
                            status.rss_shmem_kb, status.vm_swap_kb, status.threads};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
    if (fields[i] < -1) abort();
  }
  /* Credentials: all four ids, or -1 in each; a group count within the array. */
  for (int i = 0; i < 4; i++) {
    if (status.uids[i] < -1 || status.gids[i] < -1) abort();
    if ((status.uids[i] == -1) != (status.uids[0] == -1) || (status.gids[i] == -1) != (status.gids[0] == -1)) abort();
  }
  if (status.n_groups < -1 || status.n_groups > ASP_STATUS_MAX_GROUPS) abort();

  asp_statm statm;
  memset(&statm, 0, sizeof(statm));
  int rc = asp_parse_statm(text, &statm);
  if (rc != 0 && rc != -1) abort();

  free(text);
  return 0;
}
