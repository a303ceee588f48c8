/* The host board's persistent store: a file (TE_POSIX_FLASH, default model_slots.flash in the
 * working directory, which `tinyedge flash` sets to the project's). Every write goes straight to
 * the file, so killing the process at any point leaves exactly the bytes written until then.
 *
 * TE_POSIX_POWER_CUT_AT=N cuts the power when the Nth byte (1-based) since boot is about to be
 * written to the store: the bytes before it are written, then the process exits at once (status 99),
 * as a board whose supply fails in the middle of a flash write. An erase (0xFF written over the range)
 * is not counted: it only ever touches the inactive slot. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "te_store.h"

#ifndef TE_POSIX_STORE_BYTES
#define TE_POSIX_STORE_BYTES (8u * 1024u * 1024u)
#endif

#define POWER_CUT_STATUS 99

static int store_fd = -1;
static unsigned long long written;

static int store_open(void) {
  if (store_fd < 0) {
    const char *path = getenv("TE_POSIX_FLASH");
    store_fd = open(path && *path ? path : TE_STORE_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  return store_fd;
}

uint32_t te_store_size(void) { return store_open() < 0 ? 0u : TE_POSIX_STORE_BYTES; }

int te_store_read(uint32_t offset, void *data, uint32_t len) {
  ssize_t got;
  if (store_open() < 0 || (uint64_t)offset + len > TE_POSIX_STORE_BYTES) {
    return -1;
  }
  got = pread(store_fd, data, len, (off_t)offset);
  if (got < 0) {
    return -1;
  }
  /* Never-written flash reads as erased. */
  for (; (uint32_t)got < len; got++) {
    ((unsigned char *)data)[got] = 0xFF;
  }
  return 0;
}

int te_store_write(uint32_t offset, const void *data, uint32_t len) {
  if (store_open() < 0 || (uint64_t)offset + len > TE_POSIX_STORE_BYTES) {
    return -1;
  }
  {
    const char *cut = getenv("TE_POSIX_POWER_CUT_AT");
    unsigned long long at = (cut && *cut) ? strtoull(cut, NULL, 0) : 0;
    if (at && written + len >= at) {
      uint32_t before = (uint32_t)(at - 1u - written);
      if (before) {
        (void)!pwrite(store_fd, data, before, (off_t)offset);
      }
      _exit(POWER_CUT_STATUS);
    }
  }
  written += len;
  return pwrite(store_fd, data, len, (off_t)offset) == (ssize_t)len ? 0 : -1;
}

int te_store_erase(uint32_t offset, uint32_t len) {
  unsigned char erased[256];
  if (store_open() < 0 || (uint64_t)offset + len > TE_POSIX_STORE_BYTES) {
    return -1;
  }
  memset(erased, 0xFF, sizeof erased);
  while (len > 0u) {
    uint32_t n = len < sizeof erased ? len : (uint32_t)sizeof erased;
    if (pwrite(store_fd, erased, n, (off_t)offset) != (ssize_t)n) {
      return -1;
    }
    offset += n;
    len -= n;
  }
  return 0;
}
