/* A persistent store in a file on the debug host, through Arm-style semihosting (SYS_OPEN,
 * SYS_SEEK, SYS_READ, SYS_WRITE): QEMU opens it relative to its working directory. A port
 * includes this once, after defining `static uint32_t te_semihost_call(uint32_t op, void *arg)`
 * with its architecture's trap. */
#ifndef TE_SEMIHOST_STORE_H
#define TE_SEMIHOST_STORE_H

#include <stdint.h>
#include <string.h>

#include "te_store.h"

#ifndef TE_SEMIHOST_STORE_BYTES
#define TE_SEMIHOST_STORE_BYTES (2u * 1024u * 1024u)
#endif

#define TE_SH_OPEN 0x01u
#define TE_SH_WRITE 0x05u
#define TE_SH_READ 0x06u
#define TE_SH_SEEK 0x0Au
#define TE_SH_MODE_RB_PLUS 3u   /* "r+b": an existing file */
#define TE_SH_MODE_WB_PLUS 7u   /* "w+b": create it */

static int32_t te_semihost_fd = -1;

static int32_t te_semihost_open(uint32_t mode) {
  uint32_t block[3];
  block[0] = (uint32_t)(uintptr_t)TE_STORE_FILE;
  block[1] = mode;
  block[2] = (uint32_t)strlen(TE_STORE_FILE);
  return (int32_t)te_semihost_call(TE_SH_OPEN, block);
}

uint32_t te_store_size(void) {
  if (te_semihost_fd < 0) {
    te_semihost_fd = te_semihost_open(TE_SH_MODE_RB_PLUS);
  }
  if (te_semihost_fd < 0) {
    te_semihost_fd = te_semihost_open(TE_SH_MODE_WB_PLUS);
  }
  return te_semihost_fd < 0 ? 0u : TE_SEMIHOST_STORE_BYTES;
}

static int te_semihost_seek(uint32_t offset) {
  uint32_t block[2];
  block[0] = (uint32_t)te_semihost_fd;
  block[1] = offset;
  return te_semihost_call(TE_SH_SEEK, block) == 0u ? 0 : -1;
}

int te_store_read(uint32_t offset, void *data, uint32_t len) {
  uint32_t block[3];
  uint32_t missing;
  if (te_store_size() == 0u || offset + len > TE_SEMIHOST_STORE_BYTES || te_semihost_seek(offset) != 0) {
    return -1;
  }
  block[0] = (uint32_t)te_semihost_fd;
  block[1] = (uint32_t)(uintptr_t)data;
  block[2] = len;
  missing = te_semihost_call(TE_SH_READ, block);   /* bytes NOT read: past the file's end */
  if (missing > len) {
    return -1;
  }
  memset((uint8_t *)data + (len - missing), 0xFF, missing);   /* never-written flash reads as erased */
  return 0;
}

int te_store_write(uint32_t offset, const void *data, uint32_t len) {
  uint32_t block[3];
  if (te_store_size() == 0u || offset + len > TE_SEMIHOST_STORE_BYTES || te_semihost_seek(offset) != 0) {
    return -1;
  }
  block[0] = (uint32_t)te_semihost_fd;
  block[1] = (uint32_t)(uintptr_t)data;
  block[2] = len;
  return te_semihost_call(TE_SH_WRITE, block) == 0u ? 0 : -1;
}

/* Erased flash reads 0xFF: written over the range a small block at a time. */
int te_store_erase(uint32_t offset, uint32_t len) {
  uint8_t erased[64];
  memset(erased, 0xFF, sizeof erased);
  while (len > 0u) {
    uint32_t n = len < sizeof erased ? len : (uint32_t)sizeof erased;
    if (te_store_write(offset, erased, n) != 0) {
      return -1;
    }
    offset += n;
    len -= n;
  }
  return 0;
}

#endif
