/*
 * The ptrace injector's parsers, apart from the ptrace code so a fuzzer can drive them
 * (native/fuzz/inject_caves.c): a /proc/PID/maps line, and the ELF program headers of a mapped
 * library, from which the two unused places the injected call needs are computed. Both read what
 * a target controls (its mappings, the files it maps), so both must hold on any input.
 */
#ifndef ALLOCSCOPE_INJECT_CAVES_H
#define ALLOCSCOPE_INJECT_CAVES_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t start, end, offset, inode;
  char perms[5];
  char path[4096];
} inj_mapping;

/* One line of /proc/PID/maps (NUL-terminated) into `m`; false if it is not one. */
bool inj_parse_maps_line(const char *line, inj_mapping *m);

/*
 * For a library whose executable segment is mapped at `m` (r-xp): the code cave, after that
 * segment's file contents (p_filesz), 64-byte aligned, inside `m`; and the results cave, after the
 * first writable segment's contents (p_memsz), 8-byte aligned, within that segment's last page.
 * ELF gABI: those bytes are mapped but are no part of the program. False when the headers do not
 * describe `m`, an address would overflow, or either cave has no room.
 */
bool inj_segment_caves(const Elf64_Ehdr *header, const Elf64_Phdr *ph, unsigned count, const inj_mapping *m, uint64_t page,
                       size_t code_size, size_t results_size, uint64_t *code, uint64_t *results);

#endif
