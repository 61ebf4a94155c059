/* The ptrace injector's parsers (see caves.h). */
#define _GNU_SOURCE
#include "caves.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool inj_parse_maps_line(const char *line, inj_mapping *m) {
  memset(m, 0, sizeof *m);
  int path_at = 0;
  /* proc(5): "start-end perms offset dev inode   path" */
  if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %*s %" SCNu64 " %n", &m->start, &m->end, m->perms, &m->offset, &m->inode, &path_at) < 5) {
    return false;
  }
  if (m->end <= m->start) return false;
  if (path_at > 0) {
    snprintf(m->path, sizeof m->path, "%s", line + path_at);
    m->path[strcspn(m->path, "\n")] = '\0';
  }
  return true;
}

/* a + b + c without wrapping past 2^64, into *sum. */
static bool add3(uint64_t a, uint64_t b, uint64_t c, uint64_t *sum) {
  uint64_t ab;
  return !__builtin_add_overflow(a, b, &ab) && !__builtin_add_overflow(ab, c, sum);
}

/* `value` rounded up to a multiple of `align` (a power of two), without wrapping. */
static bool round_up(uint64_t value, uint64_t align, uint64_t *rounded) {
  uint64_t bumped;
  if (__builtin_add_overflow(value, align - 1, &bumped)) return false;
  *rounded = bumped & ~(align - 1);
  return true;
}

bool inj_segment_caves(const Elf64_Ehdr *header, const Elf64_Phdr *ph, unsigned count, const inj_mapping *m, uint64_t page,
                       size_t code_size, size_t results_size, uint64_t *code, uint64_t *results) {
  if (page == 0 || (page & (page - 1)) != 0 || count > header->e_phnum) return false;
  bool have_code = false;
  uint64_t bias = 0;
  for (unsigned k = 0; k < count && !have_code; k++) {
    if (ph[k].p_type != PT_LOAD || !(ph[k].p_flags & PF_X) || (ph[k].p_offset & ~(page - 1)) != m->offset) continue;
    uint64_t vaddr_page = ph[k].p_vaddr & ~(page - 1);
    if (vaddr_page > m->start) continue;
    bias = m->start - vaddr_page;
    uint64_t contents_end, cave_end;
    if (!add3(bias, ph[k].p_vaddr, ph[k].p_filesz, &contents_end) || !round_up(contents_end, 64, code)) continue;
    /* Inside the mapping, past the contents: never over code the segment holds. */
    have_code = *code >= m->start && !__builtin_add_overflow(*code, (uint64_t)code_size, &cave_end) && cave_end <= m->end;
  }
  if (!have_code) return false;
  for (unsigned k = 0; k < count; k++) {
    if (ph[k].p_type != PT_LOAD || !(ph[k].p_flags & PF_W)) continue;
    uint64_t contents_end, page_end, cave_end;
    if (!add3(bias, ph[k].p_vaddr, ph[k].p_memsz, &contents_end) || !round_up(contents_end, 8, results) ||
        !round_up(contents_end, page, &page_end) || __builtin_add_overflow(*results, (uint64_t)results_size, &cave_end)) {
      return false;
    }
    return cave_end <= page_end;
  }
  return false;
}
