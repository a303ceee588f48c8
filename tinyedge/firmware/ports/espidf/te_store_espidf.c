/* The ESP32s' persistent store: the `tinyedge` data partition that updatable firmware's partition table
 * puts at the end of the chip (tinyedge/frameworks/espidf.py; the profile's `store.bytes`), read, erased
 * and written through ESP-IDF's esp_partition API (components/esp_partition/include/esp_partition.h).
 *
 * SPI NOR flash erases 4 KiB sectors and a write only clears bits, so a write reads each sector it
 * touches into RAM; when every byte it changes is erased (0xFF) it programs just those bytes, otherwise
 * it erases the sector and programs it back whole. The lifecycle's two boot-record copies (logical
 * offsets 0 and 256) get a sector each, so a power cut between an erase and its program loses one copy
 * at most, and the other (the previous record) stays in force; the slots (logical offsets from 4096)
 * follow, each a whole number of sectors (the partition holds an even number of them), so rewriting
 * the inactive slot never erases a sector of the active one. Without the partition (firmware not
 * generated --updatable, or a table of one's own) or with flash encryption on it, the store is empty. */
#include <stdint.h>
#include <string.h>

#include "esp_partition.h"
#include "te_store.h"

#define PARTITION_LABEL "tinyedge"
#define SECTOR 4096u
#define SLOTS_BASE 4096u          /* te_slots.c's SLOTS_BASE: the boot records live below it */
#define RECORD_COPY 256u          /* te_lifecycle.c's RECORD_SPACING */
#define RECORD_SECTORS 2u
#define ERASED 0xFFu

static const esp_partition_t *partition;
static uint8_t looked_up;
static uint8_t sector_buffer[SECTOR];

static const esp_partition_t *store_partition(void) {
  if (!looked_up) {
    const esp_partition_t *found =
        esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, PARTITION_LABEL);
    looked_up = 1;
    if (found != NULL && !found->encrypted && found->size >= 4u * SECTOR && found->size % (2u * SECTOR) == 0u) {
      partition = found;
    }
  }
  return partition;
}

/* The partition offset of a logical store offset, or -1 outside the store. */
static int64_t physical(uint32_t offset) {
  if (offset < SLOTS_BASE) {
    uint32_t copy = offset / RECORD_COPY;
    return copy < RECORD_SECTORS ? (int64_t)copy * SECTOR + offset % RECORD_COPY : -1;
  }
  if (offset - SLOTS_BASE >= partition->size - RECORD_SECTORS * SECTOR) {
    return -1;
  }
  return (int64_t)RECORD_SECTORS * SECTOR + (offset - SLOTS_BASE);
}

/* Bytes from `offset` to the end of its sector's run (a record copy ends at 256 bytes). */
static uint32_t run_at(uint32_t offset, uint32_t at) {
  uint32_t run = SECTOR - at % SECTOR;
  if (offset < SLOTS_BASE && run > RECORD_COPY - offset % RECORD_COPY) {
    run = RECORD_COPY - offset % RECORD_COPY;
  }
  return run;
}

uint32_t te_store_size(void) {
  const esp_partition_t *p = store_partition();
  return p == NULL ? 0u : SLOTS_BASE + p->size - RECORD_SECTORS * SECTOR;
}

int te_store_read(uint32_t offset, void *data, uint32_t len) {
  uint8_t *out = (uint8_t *)data;
  if (store_partition() == NULL) {
    return -1;
  }
  while (len > 0u) {
    int64_t at = physical(offset);
    uint32_t run;
    if (at < 0) {
      return -1;
    }
    run = run_at(offset, (uint32_t)at);
    if (run > len) run = len;
    if (esp_partition_read(partition, (size_t)at, out, run) != ESP_OK) {
      return -1;
    }
    out += run;
    offset += run;
    len -= run;
  }
  return 0;
}

/* Put `run` bytes at `within` of the sector at `sector`: program the changed bytes, after an erase
 * of the sector when one of them is not erased. */
static int rewrite(uint32_t sector, uint32_t within, const uint8_t *in, uint32_t run) {
  uint32_t first = run, last = 0, i;
  int erase = 0;
  if (esp_partition_read(partition, sector, sector_buffer, SECTOR) != ESP_OK) {
    return -1;
  }
  for (i = 0; i < run; i++) {
    if (sector_buffer[within + i] != in[i]) {
      erase |= sector_buffer[within + i] != ERASED;
      if (i < first) first = i;
      last = i + 1u;
    }
  }
  if (first >= last) {
    return 0;
  }
  memcpy(sector_buffer + within, in, run);
  if (!erase) {
    return esp_partition_write(partition, sector + within + first, in + first, last - first) == ESP_OK ? 0 : -1;
  }
  if (esp_partition_erase_range(partition, sector, SECTOR) != ESP_OK ||
      esp_partition_write(partition, sector, sector_buffer, SECTOR) != ESP_OK) {
    return -1;
  }
  return 0;
}

int te_store_write(uint32_t offset, const void *data, uint32_t len) {
  const uint8_t *in = (const uint8_t *)data;
  if (store_partition() == NULL) {
    return -1;
  }
  while (len > 0u) {
    int64_t at = physical(offset);
    uint32_t run;
    if (at < 0) {
      return -1;
    }
    run = run_at(offset, (uint32_t)at);
    if (run > len) run = len;
    if (rewrite((uint32_t)at - (uint32_t)at % SECTOR, (uint32_t)at % SECTOR, in, run) != 0) {
      return -1;
    }
    in += run;
    offset += run;
    len -= run;
  }
  return 0;
}
