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

/* What te_slots.c erases at a time, counted from a slot's start: every flash store's page (sector)
 * divides it, and each slot starts a page (te_store_layout.h). */
#define TE_STORE_ERASE_BYTES 4096u

/* Erase [offset, offset + len): afterwards those bytes read 0xFF, so writes into them program without
 * erasing (one erase per page however many writes land in it); 0 on success, durable once it returns.
 * Flash stores erase the whole pages the range touches: give whole pages (slot-relative multiples of
 * TE_STORE_ERASE_BYTES, up to the slot's end). */
int te_store_erase(uint32_t offset, uint32_t len);

#ifdef __cplusplus
}
#endif

#endif
