/* The mps2 board's persistent store: a semihosting file in QEMU's working directory. */
#include <stdint.h>

static uint32_t te_semihost_call(uint32_t op, void *arg) {
  register uint32_t r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

#include "te_semihost_store.h"
