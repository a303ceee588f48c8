/* The model's lifecycle on the board: the boot record in the persistent store and STATS.
 * See te_lifecycle.h and docs/protocol.md ("Lifecycle requests"). */
#include "te_lifecycle.h"

#if !defined(TE_LIFECYCLE) && !defined(__AVR__)
#define TE_LIFECYCLE 1
#endif

#if TE_LIFECYCLE

#include <stddef.h>
#include <string.h>

#include "te_protocol.h"
#include "te_store.h"
#include "tinyedge_model_info.h"
#include "tinyedge_port.h"
#include "tinyedge_runtime.h"

/* -DTE_FIRMWARE_VERSION=tinyedge-0.1.0 (a bare word: no quotes to survive make and the shell). */
#define TE_STRINGIFY_(x) #x
#define TE_STRINGIFY(x) TE_STRINGIFY_(x)
#ifdef TE_FIRMWARE_VERSION
#define TE_FIRMWARE_VERSION_STRING TE_STRINGIFY(TE_FIRMWARE_VERSION)
#else
#define TE_FIRMWARE_VERSION_STRING "tinyedge"
#endif

#define NO_MICROS 0xFFFFFFFFUL
#define RECORD_MAGIC 0x32524554UL   /* "TER2" */
#define RECORD_SPACING 256u         /* two copies of the boot record, written in turn */

typedef char te_record_fits[(sizeof(te_boot_record_t) <= RECORD_SPACING) ? 1 : -1];

te_boot_record_t te_lifecycle_record;
#define record te_lifecycle_record
static uint8_t record_copy;        /* where `record` was read from; the next write goes to the other */
static uint8_t persistent;

static uint32_t inferences;
static uint32_t errors;
static uint32_t latency_min;
static uint32_t latency_max;
static uint32_t latency_count;
static uint64_t latency_sum;
static uint64_t uptime_us;
static uint32_t last_micros;

/* Ports without a persistent store: nothing survives a reset. */
__attribute__((weak)) uint32_t te_store_size(void) { return 0; }
__attribute__((weak)) int te_store_read(uint32_t offset, void *data, uint32_t len) {
  (void)offset; (void)data; (void)len;
  return -1;
}
__attribute__((weak)) int te_store_write(uint32_t offset, const void *data, uint32_t len) {
  (void)offset; (void)data; (void)len;
  return -1;
}
__attribute__((weak)) int te_store_erase(uint32_t offset, uint32_t len) {
  (void)offset; (void)len;
  return -1;
}

__attribute__((weak)) const uint8_t *te_model_signing_key(void) { return NULL; }

static uint32_t crc32_of(const void *data, uint32_t len) {
  const uint8_t *p = (const uint8_t *)data;
  uint32_t crc = 0xFFFFFFFFUL;
  while (len--) {
    uint8_t bit;
    crc ^= *p++;
    for (bit = 0; bit < 8u; bit++) {
      crc = (crc >> 1) ^ (0xEDB88320UL & (0UL - (crc & 1UL)));
    }
  }
  return ~crc;
}

/* Read a copy into `record` itself: the boot record is read in place, never onto the stack (two copies
 * there were the deepest stack of small models' firmware). Returns whether it is valid. */
static uint8_t read_record(uint8_t copy) {
  if (te_store_read((uint32_t)copy * RECORD_SPACING, &record, sizeof record) != 0) {
    return 0;
  }
  return record.magic == RECORD_MAGIC && record.crc == crc32_of(&record, offsetof(te_boot_record_t, crc));
}

int te_lifecycle_write_record(void) {
  uint8_t copy = (uint8_t)(record_copy ^ 1u);
  record.magic = RECORD_MAGIC;
  record.seq++;
  record.crc = crc32_of(&record, offsetof(te_boot_record_t, crc));
  if (te_store_write((uint32_t)copy * RECORD_SPACING, &record, sizeof record) != 0) {
    return -1;
  }
  record_copy = copy;
  return 0;
}

static void fresh_record(void) {
  uint32_t seq = record.seq;
  memset(&record, 0, sizeof record);
  record.seq = seq;
  record.active.slot = TE_SLOT_BUILT_IN;
  record.previous.slot = TE_SLOT_BUILT_IN;
  memcpy(record.firmware_sha256, te_model_info.model_sha256, 32);
  memcpy(record.active.model_sha256, te_model_info.model_sha256, 32);
}

/* The newer valid copy; a fresh record when there is none or another firmware wrote it (a re-flash). */
static void load_record(void) {
  uint8_t valid1 = read_record(1);
  uint32_t seq1 = record.seq;
  uint8_t valid0 = read_record(0);
  if (valid0 || valid1) {
    record_copy = (valid0 && valid1) ? (uint8_t)((int32_t)(seq1 - record.seq) > 0) : valid1;
    /* The newer copy, checked a moment ago, read again even when it is copy 0 (already in place): a boot
     * takes as long whichever copy is newer. A store that no longer reads starts over. */
    if (te_store_read((uint32_t)record_copy * RECORD_SPACING, &record, sizeof record) != 0 ||
        memcmp(record.firmware_sha256, te_model_info.model_sha256, 32) != 0) {
      fresh_record();
    }
    return;
  }
  record_copy = 1;   /* the first record goes to copy 0 */
  record.seq = 0;
  fresh_record();
}

void te_lifecycle_boot(void) {
  inferences = errors = latency_count = latency_max = 0;
  latency_min = NO_MICROS;
  latency_sum = 0;
  uptime_us = 0;
  last_micros = te_port_micros();
  persistent = te_store_size() > 2u * RECORD_SPACING;
  if (!persistent) {
    fresh_record();
  } else {
    load_record();
    record.boots++;
    if (te_lifecycle_write_record() != 0) {
      persistent = 0;
    }
  }
  te_slots_boot(persistent);
}

/* µs since boot, from a 32-bit counter that wraps: call at least once per wrap (71 minutes).
 * A reading that went backwards (a timer read racing its own wrap interrupt) is skipped. */
static void advance_uptime(void) {
  uint32_t now = te_port_micros();
  if ((int32_t)(now - last_micros) < 0) {
    return;
  }
  uptime_us += (uint32_t)(now - last_micros);
  last_micros = now;
}

void te_lifecycle_before_invoke(void) { te_slots_before_invoke(); }

void te_lifecycle_on_infer(uint8_t status, uint32_t micros) {
  advance_uptime();
  if (status != TE_OK) {
    errors++;
    return;
  }
  inferences++;
  if (micros != NO_MICROS) {
    latency_count++;
    latency_sum += micros;
    if (micros < latency_min) latency_min = micros;
    if (micros > latency_max) latency_max = micros;
  }
  te_slots_after_invoke(status);
}

static void put_u32(uint32_t value) {
  uint8_t bytes[4];
  bytes[0] = (uint8_t)value;
  bytes[1] = (uint8_t)(value >> 8);
  bytes[2] = (uint8_t)(value >> 16);
  bytes[3] = (uint8_t)(value >> 24);
  te_proto_put(bytes, 4);
}

static void put_u64(uint64_t value) {
  put_u32((uint32_t)value);
  put_u32((uint32_t)(value >> 32));
}

static void put_u8(uint8_t value) { te_proto_put(&value, 1); }

static void put_string(const char *text) {
  size_t len = strlen(text);
  put_u8((uint8_t)(len > 255u ? 255u : len));
  te_proto_put(text, (uint32_t)(len > 255u ? 255u : len));
}

static void handle_stats(uint32_t id) {
  advance_uptime();
  te_proto_reply_begin(TE_MSG_STATS, id, TE_OK);
  put_u8(TE_STATS_VERSION);
  put_u32(record.active.version);
  te_proto_put(record.active.model_sha256, 32);
  put_u8(te_slots_updatable() ? record.active.slot : TE_SLOT_BUILT_IN);
  put_string(TE_FIRMWARE_VERSION_STRING);
  put_u64(uptime_us / 1000u);
  put_u8(persistent);
  put_u32(record.boots ? record.boots - 1u : 0u);
  put_u32(inferences);
  put_u32(errors);
  put_u32(latency_count);
  put_u32(latency_count ? latency_min : 0u);
  put_u32(latency_max);
  put_u64(latency_sum);
  put_u32(te_runtime_arena_used());
  put_u32(te_runtime_arena_size());
  {
    te_shadow_report_t shadow;
    te_slots_shadow_report(&shadow);
    put_u8(shadow.outcome);
    put_u32(shadow.version);
    put_u32(shadow.target);
    put_u32(shadow.done);
    put_u32(shadow.exact);
    put_u32(shadow.top1);
  }
  put_u8(te_model_signing_key() != NULL);
  if (te_model_signing_key() != NULL) {
    te_proto_put(te_model_signing_key(), 32);
  }
  te_proto_reply_end();
}

uint8_t te_lifecycle_dispatch(uint8_t type, uint32_t id, const uint8_t *body, uint32_t len) {
  (void)body;
  advance_uptime();
  switch (type) {
    case TE_MSG_STATS:
      if (len != 0u) {
        te_proto_reply_begin(TE_MSG_STATS, id, TE_PROTO_BAD_LENGTH);
        te_proto_reply_end();
        return 1;
      }
      handle_stats(id);
      return 1;
    default:
      return te_slots_dispatch(type, id, body, len);
  }
}

#endif
