/* The ESP32s' persistent store: the `tinyedge` data partition that updatable firmware's partition table
 * puts at the end of the chip (tinyedge/frameworks/espidf.py; the profile's `store.bytes`), read, erased
 * and written through ESP-IDF's esp_partition API (components/esp_partition/include/esp_partition.h).
 *
 * SPI NOR flash erases 4 KiB sectors and a write only clears bits, so a write reads each sector it
 * touches into RAM; when every byte it changes is erased (0xFF) it programs just those bytes, otherwise
 * it erases the sector and programs it back whole; te_store_erase() erases whole sectors ahead of writes
 * (te_slots.c: once per sector per update), so the writes that follow only program. The sectors are laid out as te_store_layout.h says
 * (a sector per boot-record copy, whole sectors per slot: the partition holds an even number of
 * them), so a power cut between an erase and its program never costs the record in force or the
 * active slot. Without the partition (firmware not
 * generated --updatable, or a table of one's own) or with flash encryption on it, the store is empty. */
#include <stdint.h>
#include <string.h>

#include "esp_partition.h"
#include "te_store.h"
#include "te_store_layout.h"

#define PARTITION_LABEL "tinyedge"
#define SECTOR 4096u
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

uint32_t te_store_size(void) {
  const esp_partition_t *p = store_partition();
  return p == NULL ? 0u : te_store_layout_size((uint32_t)p->size, SECTOR);
}

int te_store_read(uint32_t offset, void *data, uint32_t len) {
  uint8_t *out = (uint8_t *)data;
  if (store_partition() == NULL) {
    return -1;
  }
  while (len > 0u) {
    uint32_t at = 0u, run = te_store_layout_locate(offset, len, (uint32_t)partition->size, SECTOR, &at);
    if (run == 0u || esp_partition_read(partition, at, out, run) != ESP_OK) {
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
    uint32_t at = 0u, run = te_store_layout_locate(offset, len, (uint32_t)partition->size, SECTOR, &at);
    if (run == 0u || rewrite(at - at % SECTOR, at % SECTOR, in, run) != 0) {
      return -1;
    }
    in += run;
    offset += run;
    len -= run;
  }
  return 0;
}

/* Erase the whole sectors the range touches. */
int te_store_erase(uint32_t offset, uint32_t len) {
  if (store_partition() == NULL) {
    return -1;
  }
  while (len > 0u) {
    uint32_t at = 0u, run = te_store_layout_locate(offset, len, (uint32_t)partition->size, SECTOR, &at);
    if (run == 0u || esp_partition_erase_range(partition, at - at % SECTOR, SECTOR) != ESP_OK) {
      return -1;
    }
    offset += run;
    len -= run;
  }
  return 0;
}
