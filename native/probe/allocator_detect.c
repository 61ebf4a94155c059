/*
 * Allocator detection. The rule: ask the dynamic linker which object provides the `malloc` the
 * process calls (dladdr on dlsym(RTLD_DEFAULT, "malloc")), then look for each allocator's own
 * control symbol in that same object. This is what makes "which allocator serves malloc" an
 * output and not an assumption: jemalloc and mimalloc implement no mallinfo2, so glibc's mallinfo2
 * answers under them with glibc's idle arenas (references/metrics.md §8 item 7).
 */
#define _GNU_SOURCE
#include "allocator_detect.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "jemalloc_probe.h"
#include "mimalloc_probe.h"
#include "tcmalloc_probe.h"

static asp_allocator detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

const char *asp_allocator_name(asp_allocator_kind kind) {
  switch (kind) {
    case ASP_ALLOCATOR_GLIBC: return "glibc";
    case ASP_ALLOCATOR_JEMALLOC: return "jemalloc";
    case ASP_ALLOCATOR_TCMALLOC: return "tcmalloc";
    case ASP_ALLOCATOR_MIMALLOC: return "mimalloc";
    case ASP_ALLOCATOR_MUSL: return "musl";
    default: return "unknown";
  }
}

/* The object that defines `symbol` as the process's lookup scope resolves it, or NULL.
   dlsym(RTLD_DEFAULT) is not enough on its own: an executable that takes a function's address
   (node does, for malloc) gets a "canonical PLT" entry, and dlsym then returns that stub inside
   the executable, which defines nothing. dladdr1 names the real definer only when the symbol it
   finds at that address is a defined one; otherwise walk the link map in load order (the
   global lookup order: executable, LD_PRELOAD objects, then dependencies) for the first object
   whose own definition it is. */
static const void *object_base_of(const char *symbol, const char **file) {
  void *address = dlsym(RTLD_DEFAULT, symbol);
  if (address == NULL) return NULL;
  Dl_info info;
  const ElfW(Sym) *entry_sym = NULL;
  /* glibc's dladdr also matches the executable's undefined (SHN_UNDEF) entry for the stub, so ask
     for the symbol table entry and require a real definition. */
  if (dladdr1(address, &info, (void **)&entry_sym, RTLD_DL_SYMENT) != 0 && entry_sym != NULL &&
      entry_sym->st_shndx != SHN_UNDEF && info.dli_sname != NULL &&
      strcmp(info.dli_sname, symbol) == 0 && info.dli_saddr == address) {
    if (file != NULL) *file = info.dli_fname;
    return info.dli_fbase;
  }
  struct link_map *map = NULL;
  void *self = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);
  if (self == NULL || dlinfo(self, RTLD_DI_LINKMAP, &map) != 0 || map == NULL) return NULL;
  for (struct link_map *entry = map->l_next; entry != NULL; entry = entry->l_next) {
    if (entry->l_name == NULL || entry->l_name[0] == '\0') continue;
    /* RTLD_NOLOAD only takes a reference to an object already loaded; dlclose gives it back. */
    void *handle = dlopen(entry->l_name, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == NULL) continue;
    void *candidate = dlsym(handle, symbol);
    dlclose(handle);
    if (candidate != NULL && dladdr(candidate, &info) != 0 && info.dli_fname != NULL &&
        strcmp(info.dli_fname, entry->l_name) == 0) {
      if (file != NULL) *file = info.dli_fname;
      return info.dli_fbase;
    }
  }
  return NULL;
}

static void copy_text(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src != NULL ? src : "");
}

static void detect_once_body(void) {
  asp_allocator *out = &detected;
  memset(out, 0, sizeof(*out));
  const char *malloc_file = NULL;
  const void *malloc_base = object_base_of("malloc", &malloc_file);
  copy_text(out->malloc_library, sizeof(out->malloc_library), malloc_file);

  const char *file = NULL;
  int prefixed_jemalloc = 0;
  /* jemalloc serving malloc: mallctl lives in the object that provides malloc. */
  if (malloc_base != NULL && object_base_of("mallctl", &file) == malloc_base) {
    out->kind = ASP_ALLOCATOR_JEMALLOC;
    snprintf(out->detected_by, sizeof(out->detected_by), "malloc and mallctl are both defined in %s",
             malloc_file);
  } else if (malloc_base != NULL &&
             object_base_of("MallocExtension_GetNumericProperty", &file) == malloc_base) {
    out->kind = ASP_ALLOCATOR_TCMALLOC;
    snprintf(out->detected_by, sizeof(out->detected_by),
             "malloc and MallocExtension_GetNumericProperty are both defined in %s", malloc_file);
  } else if (malloc_base != NULL && object_base_of("mi_version", &file) == malloc_base) {
    out->kind = ASP_ALLOCATOR_MIMALLOC;
    snprintf(out->detected_by, sizeof(out->detected_by),
             "malloc and mi_version are both defined in %s", malloc_file);
  } else if (asp_je_bind_prefixed() == 0) {
    /* A prefixed jemalloc (je_ or _rjem_) does not replace malloc: programs that link one call it
       explicitly for their own data (Redis' zmalloc calls je_malloc), so its books are the heap
       the program manages, and it is the allocator reported. Plain malloc stays with libc: a
       second heap, named in malloc_kind and detected_by, whose mallinfo2 then describes live
       arenas (not the idle ones of a jemalloc that replaced malloc). */
    prefixed_jemalloc = 1;
    out->kind = ASP_ALLOCATOR_JEMALLOC;
    snprintf(out->detected_by, sizeof(out->detected_by),
             "%smallctl is defined (prefixed jemalloc); plain malloc is served by %s",
             asp_je_symbol_prefix(), malloc_file != NULL ? malloc_file : "an unknown object");
    const void *libc_base = object_base_of("gnu_get_libc_version", NULL);
    if (malloc_base != NULL && libc_base == malloc_base) {
      out->malloc_kind = ASP_ALLOCATOR_GLIBC;
    } else if (libc_base == NULL && malloc_file != NULL && strstr(malloc_file, "musl") != NULL) {
      out->malloc_kind = ASP_ALLOCATOR_MUSL;
    } else {
      out->malloc_kind = ASP_ALLOCATOR_UNKNOWN;
    }
  } else if (malloc_base != NULL && object_base_of("gnu_get_libc_version", &file) == malloc_base) {
    out->kind = ASP_ALLOCATOR_GLIBC;
    snprintf(out->detected_by, sizeof(out->detected_by),
             "malloc and gnu_get_libc_version are both defined in %s", malloc_file);
  } else if (object_base_of("gnu_get_libc_version", NULL) == NULL && malloc_file != NULL &&
             strstr(malloc_file, "musl") != NULL) {
    out->kind = ASP_ALLOCATOR_MUSL;
    snprintf(out->detected_by, sizeof(out->detected_by),
             "malloc is defined in %s and no gnu_get_libc_version exists", malloc_file);
  } else {
    out->kind = ASP_ALLOCATOR_UNKNOWN;
    snprintf(out->detected_by, sizeof(out->detected_by),
             "malloc is defined in %s, which exports none of mallctl, "
             "MallocExtension_GetNumericProperty, mi_version or gnu_get_libc_version",
             malloc_file != NULL ? malloc_file : "an object dladdr cannot name");
  }

  if (!prefixed_jemalloc) out->malloc_kind = out->kind;

  switch (out->kind) {
    case ASP_ALLOCATOR_JEMALLOC:
      copy_text(out->symbol_prefix, sizeof(out->symbol_prefix), asp_je_symbol_prefix());
      asp_je_version(out->version, sizeof(out->version));
      break;
    case ASP_ALLOCATOR_TCMALLOC:
      copy_text(out->version, sizeof(out->version), asp_tc_version());
      break;
    case ASP_ALLOCATOR_MIMALLOC: {
      int v = asp_mi_version();
      /* mi_version() is major*100 + minor*10 + patch (mimalloc.h MI_MALLOC_VERSION). */
      if (v > 0) snprintf(out->version, sizeof(out->version), "%d.%d.%d", v / 100, (v / 10) % 10, v % 10);
      break;
    }
    case ASP_ALLOCATOR_GLIBC: {
      const char *(*libc_version)(void) =
          (const char *(*)(void))dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
      if (libc_version != NULL) copy_text(out->version, sizeof(out->version), libc_version());
      break;
    }
    default:
      break;
  }
}

void asp_detect_allocator(asp_allocator *out) {
  pthread_once(&detect_once, detect_once_body);
  *out = detected;
}
