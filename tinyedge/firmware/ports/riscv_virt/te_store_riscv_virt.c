/* The virt board's persistent store: a semihosting file in QEMU's working directory (QEMU runs with
 * -semihosting-config enable=on,target=native, the profile's emulator args). */
#include <stdint.h>

/* The RISC-V semihosting trap (the RISC-V semihosting binary interface): operation in a0, parameter
 * block in a1, result in a0. QEMU recognises the ebreak only between these two no-op shifts, all three
 * uncompressed and in one page: the 16-byte alignment keeps the 12-byte sequence inside one. */
static uint32_t te_semihost_call(uint32_t op, void *arg) {
  register uint32_t a0 __asm__("a0") = op;
  register void *a1 __asm__("a1") = arg;
  __asm__ volatile(".option push\n\t"
                   ".option norvc\n\t"
                   ".balign 16\n\t"
                   "slli x0, x0, 0x1f\n\t"
                   "ebreak\n\t"
                   "srai x0, x0, 7\n\t"
                   ".option pop"
                   : "+r"(a0)
                   : "r"(a1)
                   : "memory");
  return a0;
}

#include "te_semihost_store.h"
