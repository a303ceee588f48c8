/* The RP2040's persistent store: the top 512 KiB of its 2 MiB QSPI flash, written with the boot ROM's
 * flash functions (RP2040 datasheet 2.8.3.1.3: connect_internal_flash, flash_exit_xip,
 * flash_range_erase, flash_range_program, flash_flush_cache, flash_enter_cmd_xip), found through the
 * ROM's function table and called from RAM with interrupts off, since the flash cannot be read (XIP)
 * while it is erased or programmed. Reads go through XIP.
 *
 * Flash erases 4 KiB sectors, so a write reads its sector into RAM and changes it; when every byte it
 * changes is erased (0xFF) it programs just the 256-byte pages holding them (the rest of each page
 * programmed with what the flash holds: no change), otherwise it erases the sector and programs it back
 * whole. te_store_erase() erases whole sectors ahead of writes (te_slots.c: once per sector per update).
 * The lifecycle's two boot-record copies (logical offsets 0 and 256) each get a sector of their own, so
 * a power cut between an erase and its program loses one copy at most, and the other (the previous
 * record) stays in force. Logical offsets from 4096 on (the slots) follow.
 * Under rp2040js the flasher's runner performs the ROM's flash functions on the emulated flash and
 * keeps it in a host file (`qspi_flash.bin` in the project), so the store survives a restart. */
#include <stdint.h>
#include <string.h>

#include "te_store.h"

#define XIP_BASE 0x10000000u
#define FLASH_BYTES (2u * 1024u * 1024u)
#define STORE_BYTES (512u * 1024u)
#define STORE_START (FLASH_BYTES - STORE_BYTES)
#define SECTOR 4096u
#define PAGE 256u
#define RECORD_COPY 256u          /* te_lifecycle.c's RECORD_SPACING */
#define RECORD_SECTORS 2u
#define BLOCK_ERASE_CMD 0x20u     /* 4 KiB sector erase */

typedef void (*rom_void_fn)(void);
typedef void (*rom_erase_fn)(uint32_t offset, uint32_t count, uint32_t block, uint8_t command);
typedef void (*rom_program_fn)(uint32_t offset, const uint8_t *data, uint32_t count);

typedef struct {
  rom_void_fn connect, exit_xip, flush, enter_xip;
  rom_erase_fn erase;
  rom_program_fn program;
} rom_flash_t;

extern char __data_load[], __data_start[], __data_end[];

static rom_flash_t rom;
static uint8_t rom_found;
static uint8_t sector_buffer[SECTOR];

/* The ROM function with this two-letter code (datasheet 2.8.3: the table's address is the halfword at
 * 0x14; entries are code, address halfword pairs ending with code 0), or NULL. */
static void *rom_function(char first, char second) {
  const uint16_t *entry = (const uint16_t *)(uintptr_t)(*(const uint16_t *)0x14u);
  uint16_t code = (uint16_t)((uint8_t)first | ((uint16_t)(uint8_t)second << 8));
  for (; entry != 0 && entry[0] != 0u; entry += 2) {
    if (entry[0] == code) {
      return (void *)(uintptr_t)entry[1];
    }
  }
  return 0;
}

static int find_rom(void) {
  if (!rom_found) {
    rom.connect = (rom_void_fn)rom_function('I', 'F');
    rom.exit_xip = (rom_void_fn)rom_function('E', 'X');
    rom.erase = (rom_erase_fn)rom_function('R', 'E');
    rom.program = (rom_program_fn)rom_function('R', 'P');
    rom.flush = (rom_void_fn)rom_function('F', 'C');
    rom.enter_xip = (rom_void_fn)rom_function('C', 'X');
    rom_found = (rom.connect && rom.exit_xip && rom.erase && rom.program && rom.flush && rom.enter_xip) ? 1u : 2u;
  }
  return rom_found == 1u ? 0 : -1;
}

/* Runs from RAM (.data): nothing may be fetched from flash between exit_xip and enter_xip. With `erase`,
 * erases the sector at `flash_offset` first; then programs its pages [first, last) from `data` (the sector). */
__attribute__((noinline, section(".ramfunc.te_flash")))
static void rewrite_sector(const rom_flash_t *fn, uint32_t flash_offset, const uint8_t *data, uint32_t first,
                           uint32_t last, int erase) {
  uint32_t page;
  __asm__ volatile("cpsid i" ::: "memory");
  fn->connect();
  fn->exit_xip();
  if (erase) {
    fn->erase(flash_offset, SECTOR, SECTOR, BLOCK_ERASE_CMD);
  }
  for (page = first; page < last; page += PAGE) {
    fn->program(flash_offset + page, data + page, PAGE);
  }
  fn->flush();
  fn->enter_xip();
  __asm__ volatile("cpsie i" ::: "memory");
}

/* Called through a pointer: a Thumb BL from flash cannot reach RAM. */
static void (*volatile const rewrite_in_ram)(const rom_flash_t *, uint32_t, const uint8_t *, uint32_t, uint32_t,
                                             int) = rewrite_sector;

/* The flash offset of a logical store offset, or -1 outside the store. */
static int64_t physical(uint32_t offset) {
  if (offset < SECTOR) {
    uint32_t copy = offset / RECORD_COPY;
    return copy < RECORD_SECTORS ? (int64_t)STORE_START + copy * SECTOR + offset % RECORD_COPY : -1;
  }
  if (offset - SECTOR >= STORE_BYTES - RECORD_SECTORS * SECTOR) {
    return -1;
  }
  return (int64_t)STORE_START + RECORD_SECTORS * SECTOR + (offset - SECTOR);
}

uint32_t te_store_size(void) {
  uint32_t image_end = (uint32_t)(uintptr_t)__data_load + (uint32_t)(__data_end - __data_start) - XIP_BASE;
  if (image_end > STORE_START || find_rom() != 0) {
    return 0;   /* the firmware reaches into the store, or no boot ROM with flash functions */
  }
  return SECTOR + STORE_BYTES - RECORD_SECTORS * SECTOR;
}

int te_store_read(uint32_t offset, void *data, uint32_t len) {
  uint8_t *out = (uint8_t *)data;
  while (len > 0u) {
    int64_t at = physical(offset);
    uint32_t run = offset < SECTOR ? RECORD_COPY - offset % RECORD_COPY : len;
    if (at < 0) {
      return -1;
    }
    if (run > len) run = len;
    memcpy(out, (const void *)(uintptr_t)(XIP_BASE + (uint32_t)at), run);
    out += run;
    offset += run;
    len -= run;
  }
  return 0;
}

/* Whether writing `in` over `now` changes a byte that is not erased. */
static int needs_erase(const uint8_t *now, const uint8_t *in, uint32_t run) {
  uint32_t i;
  for (i = 0; i < run; i++) {
    if (now[i] != in[i] && now[i] != 0xFFu) {
      return 1;
    }
  }
  return 0;
}

int te_store_write(uint32_t offset, const void *data, uint32_t len) {
  const uint8_t *in = (const uint8_t *)data;
  if (te_store_size() == 0u) {
    return -1;
  }
  while (len > 0u) {
    int64_t at = physical(offset);
    uint32_t sector, within, run;
    if (at < 0) {
      return -1;
    }
    sector = (uint32_t)at & ~(SECTOR - 1u);
    within = (uint32_t)at - sector;
    run = SECTOR - within;
    if (offset < SECTOR && run > RECORD_COPY - offset % RECORD_COPY) run = RECORD_COPY - offset % RECORD_COPY;
    if (run > len) run = len;
    memcpy(sector_buffer, (const void *)(uintptr_t)(XIP_BASE + sector), SECTOR);
    if (memcmp(sector_buffer + within, in, run) != 0) {
      int erase = needs_erase(sector_buffer + within, in, run);
      memcpy(sector_buffer + within, in, run);
      if (erase) {
        rewrite_in_ram(&rom, sector, sector_buffer, 0u, SECTOR, 1);
      } else {
        rewrite_in_ram(&rom, sector, sector_buffer, within & ~(PAGE - 1u), (within + run + PAGE - 1u) & ~(PAGE - 1u), 0);
      }
    }
    in += run;
    offset += run;
    len -= run;
  }
  return 0;
}

/* Erase the whole sectors the range touches. */
int te_store_erase(uint32_t offset, uint32_t len) {
  if (te_store_size() == 0u) {
    return -1;
  }
  while (len > 0u) {
    int64_t at = physical(offset);
    uint32_t run;
    if (at < 0) {
      return -1;
    }
    run = offset < SECTOR ? RECORD_COPY - offset % RECORD_COPY : SECTOR - (uint32_t)at % SECTOR;
    if (run > len) run = len;
    rewrite_in_ram(&rom, (uint32_t)at & ~(SECTOR - 1u), sector_buffer, 0u, 0u, 1);
    offset += run;
    len -= run;
  }
  return 0;
}
