/* How a store on flash that erases whole pages (sectors) lays out the lifecycle's logical offsets
 * (te_store.h): the two boot-record copies (te_lifecycle.c's RECORD_SPACING apart, below te_slots.c's
 * SLOTS_BASE) get a page each, so an erase never touches both and a power cut during one loses one copy
 * at most; the slots' area (logical offsets from SLOTS_BASE) follows them. With a store of an even number
 * of pages, each slot is whole pages, so rewriting the inactive slot never erases a page of the active
 * one. Used by te_store_nrf52.c and te_store_espidf.c. */
#ifndef TE_STORE_LAYOUT_H
#define TE_STORE_LAYOUT_H

#include <stdint.h>

#define TE_STORE_SLOTS_BASE 4096u     /* te_slots.c's SLOTS_BASE */
#define TE_STORE_RECORD_COPY 256u     /* te_lifecycle.c's RECORD_SPACING */
#define TE_STORE_RECORD_PAGES 2u

/* The logical size of a store of `flash` bytes in pages of `page` bytes. */
static inline uint32_t te_store_layout_size(uint32_t flash, uint32_t page) {
  return TE_STORE_SLOTS_BASE + flash - TE_STORE_RECORD_PAGES * page;
}

/* Sets *at to where logical `offset` lies (bytes from the store's first page) and answers how many of
 * the `len` bytes from there lie together in one page (and one record copy); 0 outside the store. */
static inline uint32_t te_store_layout_locate(uint32_t offset, uint32_t len, uint32_t flash, uint32_t page,
                                              uint32_t *at) {
  uint32_t run;
  if (offset < TE_STORE_SLOTS_BASE) {
    uint32_t copy = offset / TE_STORE_RECORD_COPY;
    if (copy >= TE_STORE_RECORD_PAGES) {
      return 0u;
    }
    *at = copy * page + offset % TE_STORE_RECORD_COPY;
    run = TE_STORE_RECORD_COPY - offset % TE_STORE_RECORD_COPY;
  } else {
    if (offset - TE_STORE_SLOTS_BASE >= flash - TE_STORE_RECORD_PAGES * page) {
      return 0u;
    }
    *at = TE_STORE_RECORD_PAGES * page + (offset - TE_STORE_SLOTS_BASE);
    run = page - *at % page;
  }
  return run < len ? run : len;
}

#endif
