/* The board's persistent store: a few KiB to a few MiB of flash that survive a reset and a power
 * cut, where the lifecycle keeps its boot record (and, in updatable firmware, the model slots).
 * The emulated boards back it with a file on the host named `model_slots.flash` (the host board:
 * a plain file; QEMU mps2 and riscv_virt: a semihosting file in QEMU's working directory). A port without one
 * links the weak default in te_lifecycle.c: size 0, nothing persists. */
#ifndef TE_STORE_H
#define TE_STORE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_STORE_FILE "model_slots.flash"

/* Bytes the store holds (0: the board has no persistent store). Opens it on first use. */
uint32_t te_store_size(void);

/* Read or write `len` bytes at `offset`; 0 on success. A write is durable once it returns. */
int te_store_read(uint32_t offset, void *data, uint32_t len);
int te_store_write(uint32_t offset, const void *data, uint32_t len);

#ifdef __cplusplus
}
#endif

#endif
