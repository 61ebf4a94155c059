/* libFuzzer target: the ptrace injector's parsers (native/inject/caves.c). A target controls its
   /proc/PID/maps lines (path names) and the ELF files it maps, and the injector may run as root:
   neither may make it read out of bounds or compute a cave outside the mapping it belongs to.
   Input: one maps line, a newline, then bytes read as an ELF header and program headers.
   Invariants: a parsed line has start < end and NUL-terminated perms and path; a code cave lies
   inside the mapping, 64-byte aligned, its end not wrapped; a results cave's end is not wrapped. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../inject/caves.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *newline = memchr(data, '\n', size);
  size_t line_size = newline != NULL ? (size_t)(newline - data) : size;
  char *line = malloc(line_size + 1);
  if (line == NULL) return 0;
  memcpy(line, data, line_size);
  line[line_size] = '\0';
  inj_mapping m;
  bool parsed = inj_parse_maps_line(line, &m);
  free(line);
  if (!parsed) return 0;
  if (m.start >= m.end || memchr(m.perms, '\0', sizeof m.perms) == NULL || memchr(m.path, '\0', sizeof m.path) == NULL) abort();

  const uint8_t *elf = newline != NULL ? newline + 1 : data + size;
  size_t elf_size = (size_t)(data + size - elf);
  if (elf_size < sizeof(Elf64_Ehdr)) return 0;
  Elf64_Ehdr header;
  memcpy(&header, elf, sizeof header);
  unsigned count = (unsigned)((elf_size - sizeof header) / sizeof(Elf64_Phdr));
  if (count > 64) count = 64;
  if (count > header.e_phnum) count = header.e_phnum;
  Elf64_Phdr ph[64];
  memcpy(ph, elf + sizeof header, count * sizeof *ph);
  uint64_t code = 0, results = 0;
  const size_t code_size = 384, results_size = 24;
  if (inj_segment_caves(&header, ph, count, &m, 4096, code_size, results_size, &code, &results)) {
    if (code < m.start || code % 64 != 0 || code + code_size < code || code + code_size > m.end) abort();
    if (results % 8 != 0 || results + results_size < results) abort();
  }
  return 0;
}
