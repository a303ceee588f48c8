/* The nRF52840's persistent store (Arduino Nano 33 BLE): the top 256 KiB of its 1 MiB flash, written
 * through the NVMC (nRF52840 Product Specification, NVMC chapter: at 0x4001E000; READY 0x400, CONFIG 0x504
 * with WEN = 1 / EEN = 2, ERASEPAGE 0x508; 4 KiB pages; only whole 32-bit words are written, a write
 * only turns bits from 1 to 0, and a word may be written twice at most between erases). The CPU
 * stalls while the flash is busy, so the code may run from flash; every operation waits for READY.
 *
 * The Arduino mbed core links a sketch from 0x10000 (the bootloader below) to the end of the flash
 * (variants/ARDUINO_NANO33BLE/linker_script.ld) and keeps nothing of its own there, so the store
 * takes the sketch's last 256 KiB: the board's profile budgets updatable firmware 256 KiB less
 * (`store.bytes`), and te_store_size() answers 0, persisting nothing, if the image reaches into it.
 * The core's target (variants/ARDUINO_NANO33BLE/defines.txt) has no SoftDevice (TARGET_SOFTDEVICE_NONE)
 * and no MPU (no DEVICE_MPU, so mbed's ROM write protection is off): the NVMC is ours to drive.
 *
 * A write reads each page it touches into RAM and programs the words that change; a page whose
 * changed words are not all erased (0xFFFFFFFF) is erased first and programmed back whole, so no
 * word is written twice between erases. te_store_erase() erases whole pages ahead of writes (te_slots.c,
 * once per page per update), so the writes that follow only program. The pages are laid out as te_store_layout.h says (a page per
 * boot-record copy, whole pages per slot), so a power cut between an erase and its program never
 * costs the record in force or the active slot.
 *
 * Compiled only for the nRF52840 (the mbed core defines NRF52840_XXAA), or where TE_STORE_NRF is
 * defined with the page size and the store's place (the test that runs it on QEMU's nRF51 NVMC). */
#if defined(NRF52840_XXAA) || defined(TE_STORE_NRF)

#include <stdint.h>
#include <string.h>

#include "te_store.h"
#include "te_store_layout.h"

#ifndef TE_NRF_PAGE_BYTES
#define TE_NRF_PAGE_BYTES 4096u
#endif
#ifndef TE_NRF_STORE_START
#define TE_NRF_STORE_START 0xC0000u   /* 1 MiB flash less the store */
#endif
#ifndef TE_NRF_STORE_BYTES
#define TE_NRF_STORE_BYTES 0x40000u
#endif

#define PAGE TE_NRF_PAGE_BYTES
#define WORDS (PAGE / 4u)
#define ERASED 0xFFFFFFFFu

typedef char te_store_pages_pair[((TE_NRF_STORE_BYTES / PAGE) % 2u == 0u && TE_NRF_STORE_START % PAGE == 0u
                                  && PAGE >= TE_STORE_RECORD_COPY) ? 1 : -1];

#define NVMC_BASE 0x4001E000u
#define NVMC_READY (*(volatile uint32_t *)(NVMC_BASE + 0x400u))
#define NVMC_CONFIG (*(volatile uint32_t *)(NVMC_BASE + 0x504u))
#define NVMC_ERASEPAGE (*(volatile uint32_t *)(NVMC_BASE + 0x508u))
#define CONFIG_READ 0u
#define CONFIG_WRITE 1u
#define CONFIG_ERASE 2u

/* The image's end in flash, from the mbed core's linker script: code and constants, then .data's copy. */
extern const char __etext[], __data_start__[], __data_end__[];

static uint32_t page_buffer[WORDS];

static void wait_ready(void) {
  while ((NVMC_READY & 1u) == 0u) {
  }
}

static void set_mode(uint32_t mode) {
  wait_ready();
  NVMC_CONFIG = mode;
  __asm__ volatile("dsb" ::: "memory");
}

static void erase_page(uint32_t address) {
  set_mode(CONFIG_ERASE);
  NVMC_ERASEPAGE = address;
  wait_ready();
  set_mode(CONFIG_READ);
}

/* Program words [first, last) of the page at `address` from page_buffer, skipping erased ones; with
 * `only_changed`, only the words that differ from the flash. */
static void program_words(uint32_t address, uint32_t first, uint32_t last, int only_changed) {
  volatile uint32_t *flash = (volatile uint32_t *)(uintptr_t)address;
  uint32_t i;
  set_mode(CONFIG_WRITE);
  for (i = first; i < last; i++) {
    if (page_buffer[i] != ERASED && (!only_changed || flash[i] != page_buffer[i])) {
      flash[i] = page_buffer[i];
      wait_ready();
    }
  }
  set_mode(CONFIG_READ);
}

uint32_t te_store_size(void) {
  uint32_t image_end = (uint32_t)(uintptr_t)__etext + (uint32_t)(__data_end__ - __data_start__);
  if (image_end > TE_NRF_STORE_START) {
    return 0;   /* the firmware reaches into the store */
  }
  return te_store_layout_size(TE_NRF_STORE_BYTES, PAGE);
}

int te_store_read(uint32_t offset, void *data, uint32_t len) {
  uint8_t *out = (uint8_t *)data;
  while (len > 0u) {
    uint32_t at = 0u, run = te_store_layout_locate(offset, len, TE_NRF_STORE_BYTES, PAGE, &at);
    if (run == 0u) {
      return -1;
    }
    memcpy(out, (const void *)(uintptr_t)(TE_NRF_STORE_START + at), run);
    out += run;
    offset += run;
    len -= run;
  }
  return 0;
}

/* Put `run` bytes at `within` of the page at `page` (in flash): program the changed words, after an
 * erase when one of them is not erased. */
static void rewrite(uint32_t page, uint32_t within, const uint8_t *in, uint32_t run) {
  uint32_t first = within / 4u, last = (within + run + 3u) / 4u, i;
  int erase = 0;
  memcpy(page_buffer, (const void *)(uintptr_t)page, PAGE);
  if (memcmp((const uint8_t *)page_buffer + within, in, run) == 0) {
    return;
  }
  memcpy((uint8_t *)page_buffer + within, in, run);
  for (i = first; i < last; i++) {
    uint32_t now = ((const volatile uint32_t *)(uintptr_t)page)[i];
    if (now != page_buffer[i] && now != ERASED) {
      erase = 1;
    }
  }
  if (erase) {
    erase_page(page);
    program_words(page, 0u, WORDS, 0);
  } else {
    program_words(page, first, last, 1);
  }
}

/* Write `in` over [offset, offset + len), or with `in` NULL erase the whole pages the range touches,
 * a page (record copy) at a time. */
static int over_pages(uint32_t offset, const uint8_t *in, uint32_t len) {
  if (te_store_size() == 0u) {
    return -1;
  }
  while (len > 0u) {
    uint32_t at = 0u, run = te_store_layout_locate(offset, len, TE_NRF_STORE_BYTES, PAGE, &at);
    if (run == 0u) {
      return -1;
    }
    if (in != NULL) {
      rewrite(TE_NRF_STORE_START + at - at % PAGE, at % PAGE, in, run);
      in += run;
    } else {
      erase_page(TE_NRF_STORE_START + at - at % PAGE);
    }
    offset += run;
    len -= run;
  }
  return 0;
}

int te_store_write(uint32_t offset, const void *data, uint32_t len) {
  return over_pages(offset, (const uint8_t *)data, len);
}

int te_store_erase(uint32_t offset, uint32_t len) { return over_pages(offset, NULL, len); }

#else
typedef int te_store_nrf52_not_this_chip;   /* an empty translation unit is not ISO C */
#endif
