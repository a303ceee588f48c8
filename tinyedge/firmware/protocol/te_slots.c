/* Updatable firmware: two model slots in the persistent store and the update requests
 * (docs/protocol.md, "Updates"). An image goes into the inactive slot chunk by chunk; COMMIT checks
 * its size and SHA-256, loads it into the model, runs its self-test vectors bit for bit and only
 * then writes the boot record that makes it active. Until that one record write, every boot loads
 * the old model; a failed check or self-test reloads the old model and reports why. */
#include "te_lifecycle.h"

#if !defined(TE_LIFECYCLE) && !defined(__AVR__)
#define TE_LIFECYCLE 1
#endif

/* Only updatable firmware (generate --updatable defines TE_UPDATABLE) holds the slots' state;
 * te_slots_none.c answers for the rest. */
#if TE_LIFECYCLE && defined(TE_UPDATABLE)

#include <stddef.h>
#include <string.h>

#include "te_protocol.h"
#include "te_sha256.h"
#ifdef TE_SIGNED_UPDATES
#include "te_ed25519.h"
#endif
#include "te_store.h"
#include "tinyedge_model_info.h"
#include "tinyedge_runtime.h"

#define SLOTS_BASE 4096u
#define IMAGE_MAGIC 0x4C534554UL     /* "TESL" */
#define HEADER_BYTES 48u             /* magic u32, kind u8, 3 reserved, graph[32], array bytes u32, scalar count u32 */
#define PAD4(n) (((n) + 3u) & ~3u)
#define VECTORS_HEADER 12u           /* count u32, input bytes u32, output bytes u32 */
#define CHUNK 64u
/* version u32, image bytes u32, payload bytes u32, flags u8, image sha[32], model sha[32], graph[32] */
#define BEGIN_BYTES 109u
#define FLAG_ALLOW_DOWNGRADE 1u

__attribute__((weak)) const te_slot_layout_t *te_model_slot_layout(void) { return NULL; }

static const te_slot_layout_t *layout;
static uint8_t usable;
static uint32_t load_detail;   /* what the last failed load reports beside its status (TFLM: op, arena) */

/* The update in progress (RAM only: a reset drops it, and the host begins again). */
static struct {
  uint8_t open;
  uint8_t slot;
  uint32_t version;
  uint32_t image_bytes;
  uint32_t payload_bytes;
  uint32_t received;
  uint32_t erased;      /* bytes of the slot erased for this update (from its start) */
  uint8_t image_sha256[32];
  uint8_t model_sha256[32];
} update;

#ifdef TE_SIGNED_UPDATES
/* What the bundle's signed manifest says of the update in progress (UPDATE_SIGNATURE). */
static struct {
  uint8_t verified;
  uint32_t version;
  uint8_t model_sha256[32];
  uint8_t vectors_sha256[32];
} signed_manifest;
#endif

/* A model on trial beside the active one (UPDATE_COMMIT in shadow mode); RAM only: a reset drops it. */
#define COMMIT_SHADOW 1u
static struct {
  te_shadow_report_t report;
  uint8_t slot;
  uint16_t min_agreement_permille;
  uint32_t image_bytes;
  uint8_t image_sha256[32];
  uint8_t model_sha256[32];
} shadow;

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t slot_bytes(void) { return ((te_store_size() - SLOTS_BASE) / 2u) & ~3u; }

static uint32_t slot_base(uint8_t slot) { return SLOTS_BASE + (uint32_t)slot * slot_bytes(); }

static uint32_t arrays_bytes(void) {
  uint32_t total = 0;
  uint16_t i;
  for (i = 0; i < layout->array_count; i++) {
    total += (layout->arrays[i].bytes + 3u) & ~3u;
  }
  return total;
}

static uint32_t payload_bytes(void) { return HEADER_BYTES + arrays_bytes() + 4u * layout->scalar_count; }

static uint8_t is_tflm(void) { return layout->kind == TE_SLOT_KIND_TFLM; }

/* The header's "array bytes": AOT, every array padded; TFLM, the flatbuffer's exact length. */
static uint32_t built_in_array_bytes(void) { return is_tflm() ? layout->arrays[0].bytes : arrays_bytes(); }

uint8_t te_slots_updatable(void) { return usable; }

/* SHA-256 of `len` stored bytes at `at`. */
static int hash_stored(uint32_t at, uint32_t len, uint8_t digest[32]) {
  te_sha256_t sha;
  uint8_t chunk[CHUNK];
  te_sha256_init(&sha);
  while (len) {
    uint32_t n = len < CHUNK ? len : CHUNK;
    if (te_store_read(at, chunk, n) != 0) {
      return -1;
    }
    te_sha256_update(&sha, chunk, n);
    at += n;
    len -= n;
  }
  te_sha256_final(&sha, digest);
  return 0;
}

/* The image header at `at` describes this firmware's graph and data sizes. */
static uint8_t check_header(uint32_t at) {
  uint8_t header[HEADER_BYTES];
  if (te_store_read(at, header, HEADER_BYTES) != 0) {
    return TE_LC_STORE;
  }
  if (get_u32(header) != IMAGE_MAGIC || header[4] != layout->kind) {
    return TE_LC_BAD_IMAGE;
  }
  if (memcmp(header + 8, layout->graph, 32) != 0) {
    return TE_LC_OTHER_GRAPH;
  }
  if (is_tflm() ? get_u32(header + 40) == 0u || get_u32(header + 40) > layout->capacity
                : get_u32(header + 40) != arrays_bytes()) {
    return TE_LC_BAD_IMAGE;
  }
  if (get_u32(header + 44) != layout->scalar_count) {
    return TE_LC_BAD_IMAGE;
  }
  return TE_OK;
}

/* TFLM: the image's flatbuffer into the model buffer, and the interpreter rebuilt on it. */
static uint8_t load_flatbuffer(uint32_t at) {
  uint8_t header[HEADER_BYTES];
  uint32_t bytes;
  if (te_store_read(at, header, HEADER_BYTES) != 0) {
    return TE_LC_STORE;
  }
  bytes = get_u32(header + 40);
  layout->release();
  if (te_store_read(at + HEADER_BYTES, layout->buffer, bytes) != 0) {
    return TE_LC_STORE;
  }
  return layout->reload(bytes, &load_detail);
}

/* Read the model's data from the image at `at` into the model (arrays, then the scalars). */
static uint8_t load_image(uint32_t at) {
  uint8_t status = check_header(at);
  uint16_t i;
  if (status != TE_OK) {
    return status;
  }
  if (is_tflm()) {
    return load_flatbuffer(at);
  }
  at += HEADER_BYTES;
  for (i = 0; i < layout->array_count; i++) {
    if (te_store_read(at, layout->arrays[i].data, layout->arrays[i].bytes) != 0) {
      return TE_LC_STORE;
    }
    at += (layout->arrays[i].bytes + 3u) & ~3u;
  }
  if (layout->scalar_count && te_store_read(at, layout->scalars, 4u * layout->scalar_count) != 0) {
    return TE_LC_STORE;
  }
  layout->apply_scalars();
  return TE_OK;
}

static uint8_t verified_load(const struct te_slot_state *state) {
  uint8_t digest[32];
  if (state->slot > 1u || state->image_bytes > slot_bytes()) {
    return TE_LC_BAD_IMAGE;
  }
  if (hash_stored(slot_base(state->slot), state->image_bytes, digest) != 0) {
    return TE_LC_STORE;
  }
  if (memcmp(digest, state->image_sha256, 32) != 0) {
    return TE_LC_BAD_HASH;
  }
  return load_image(slot_base(state->slot));
}

/* The built-in model as an image in slot 0 (no self-test vectors), so that every model the board
 * can fall back to lives in a slot. */
static int save_built_in(void) {
  te_sha256_t sha;
  uint8_t header[HEADER_BYTES];
  uint8_t vectors[VECTORS_HEADER];
  uint32_t at = slot_base(0);
  uint32_t pad = 0;
  uint16_t i;
  memset(header, 0, sizeof header);
  memset(vectors, 0, sizeof vectors);
  header[0] = 'T'; header[1] = 'E'; header[2] = 'S'; header[3] = 'L';
  header[4] = layout->kind;
  memcpy(header + 8, layout->graph, 32);
  for (i = 0; i < 4u; i++) {
    header[40u + i] = (uint8_t)(built_in_array_bytes() >> (8u * i));
    header[44u + i] = (uint8_t)((uint32_t)layout->scalar_count >> (8u * i));
  }
  te_sha256_init(&sha);
#define EMIT(data, n) do { if (te_store_write(at, (data), (n)) != 0) return -1; \
    te_sha256_update(&sha, (data), (n)); at += (n); } while (0)
  EMIT(header, HEADER_BYTES);
  for (i = 0; i < layout->array_count; i++) {
    uint32_t n = layout->arrays[i].bytes;
    EMIT(layout->arrays[i].data, n);
    if (n & 3u) {
      EMIT(&pad, 4u - (n & 3u));
    }
  }
  if (layout->scalar_count) {
    EMIT(layout->scalars, 4u * layout->scalar_count);
  }
  EMIT(vectors, VECTORS_HEADER);
#undef EMIT
  te_lifecycle_record.active.slot = 0;
  te_lifecycle_record.active.image_bytes = at - slot_base(0);
  te_sha256_final(&sha, te_lifecycle_record.active.image_sha256);
  return te_lifecycle_write_record();
}

void te_slots_boot(uint8_t persistent) {
  te_boot_record_t *record = &te_lifecycle_record;
  memset(&update, 0, sizeof update);
  memset(&shadow, 0, sizeof shadow);
  layout = te_model_slot_layout();
  usable = layout != NULL && persistent && te_store_size() > SLOTS_BASE + 2u * (payload_bytes() + VECTORS_HEADER);
  if (!usable) {
    return;
  }
  if (record->active.slot == TE_SLOT_BUILT_IN) {
    if (save_built_in() != 0) {
      usable = 0;
    }
    return;
  }
  if (verified_load(&record->active) == TE_OK) {
    return;
  }
  /* The active slot no longer checks out (its flash was damaged): the previous model, else the built-in. */
  if (record->previous.slot != TE_SLOT_BUILT_IN && verified_load(&record->previous) == TE_OK) {
    record->active = record->previous;
  } else {
    memcpy(record->active.model_sha256, te_model_info.model_sha256, 32);
    record->active.version = 0;
    record->active.slot = TE_SLOT_BUILT_IN;
  }
  record->previous.slot = TE_SLOT_BUILT_IN;
  (void)te_lifecycle_write_record();
}

static void reply(uint8_t type, uint32_t id, uint8_t status) {
  te_proto_reply_begin(type, id, status);
  te_proto_reply_end();
}

static void handle_begin(uint32_t id, const uint8_t *body, uint32_t len) {
  const struct te_slot_state *active = &te_lifecycle_record.active;
  uint8_t status = TE_OK;
  uint32_t version, image_bytes, payload;
  uint8_t resume;
  if (len != BEGIN_BYTES) {
    reply(TE_MSG_UPDATE_BEGIN, id, TE_PROTO_BAD_LENGTH);
    return;
  }
  version = get_u32(body);
  image_bytes = get_u32(body + 4);
  payload = get_u32(body + 8);
  if (memcmp(body + 77, layout->graph, 32) != 0) {
    status = TE_LC_OTHER_GRAPH;
  } else if (!(body[12] & FLAG_ALLOW_DOWNGRADE) && version <= active->version) {
    status = TE_LC_DOWNGRADE;
  } else if (image_bytes > slot_bytes() || (is_tflm() && payload > HEADER_BYTES + PAD4(layout->capacity))) {
    status = TE_LC_TOO_BIG;
  } else if ((!is_tflm() && payload != payload_bytes()) || image_bytes < payload + VECTORS_HEADER) {
    status = TE_LC_BAD_IMAGE;
  }
  if (status != TE_OK) {
    reply(TE_MSG_UPDATE_BEGIN, id, status);
    return;
  }
  /* The same image again (the host lost the link): carry on from what arrived. */
  resume = update.open && update.version == version && update.image_bytes == image_bytes &&
           memcmp(update.image_sha256, body + 13, 32) == 0;
  if (!resume) {
#ifdef TE_SIGNED_UPDATES
    signed_manifest.verified = 0;
#endif
    update.open = 1;
    update.slot = active->slot == 0u ? 1u : 0u;
    update.version = version;
    update.image_bytes = image_bytes;
    update.payload_bytes = payload;
    update.received = 0;
    update.erased = 0;
    memcpy(update.image_sha256, body + 13, 32);
    memcpy(update.model_sha256, body + 45, 32);
  }
  te_proto_reply_begin(TE_MSG_UPDATE_BEGIN, id, TE_OK);
  te_proto_put(&update.slot, 1);
  {
    uint8_t received[4];
    received[0] = (uint8_t)update.received;
    received[1] = (uint8_t)(update.received >> 8);
    received[2] = (uint8_t)(update.received >> 16);
    received[3] = (uint8_t)(update.received >> 24);
    te_proto_put(received, 4);
  }
  te_proto_reply_end();
}

/* Each page of the inactive slot is erased once per update, when the first chunk reaches it (a
 * TE_STORE_ERASE_BYTES granule at a time, never past the slot): the chunks then program erased flash
 * without an erase of their own, and the erase time spreads over the transfer. A resumed transfer goes
 * on from what was erased and arrived; a rewrite of arrived bytes takes the store's read-modify-write. */
static int erase_through(uint32_t end) {
  uint32_t upto;
  if (end <= update.erased) {
    return 0;
  }
  upto = (end + TE_STORE_ERASE_BYTES - 1u) / TE_STORE_ERASE_BYTES * TE_STORE_ERASE_BYTES;
  if (upto > slot_bytes()) {
    upto = slot_bytes();
  }
  if (te_store_erase(slot_base(update.slot) + update.erased, upto - update.erased) != 0) {
    return -1;
  }
  update.erased = upto;
  return 0;
}

static uint8_t accept_data(const uint8_t *body, uint32_t len) {
  uint32_t offset, end;
  if (!update.open) {
    return TE_LC_NO_UPDATE;
  }
  if (len < 4u) {
    return TE_PROTO_BAD_LENGTH;
  }
  offset = get_u32(body);
  end = offset + (len - 4u);
  if (offset > update.received) {
    return TE_PROTO_BAD_SEQUENCE;
  }
  if (end > update.image_bytes) {
    return TE_PROTO_BAD_LENGTH;
  }
  if (erase_through(end) != 0 || te_store_write(slot_base(update.slot) + offset, body + 4, len - 4u) != 0) {
    return TE_LC_STORE;
  }
  if (end > update.received) {
    update.received = end;
  }
  return TE_OK;
}

/* Run the image's self-test vectors on the model now loaded; a failing one's index goes to *failed. */
static uint8_t self_test(uint32_t at, uint32_t end, uint32_t *failed) {
  uint8_t header[VECTORS_HEADER];
  uint32_t count, in_bytes = 0, out_bytes = 0, v;
  uint8_t i;
  *failed = 0;
  for (i = 0; i < te_model_info.num_inputs; i++) in_bytes += te_model_info.inputs[i].bytes;
  for (i = 0; i < te_model_info.num_outputs; i++) out_bytes += te_model_info.outputs[i].bytes;
  if (te_store_read(at, header, VECTORS_HEADER) != 0) {
    return TE_LC_STORE;
  }
  count = get_u32(header);
  if (get_u32(header + 4) != in_bytes || get_u32(header + 8) != out_bytes ||
      end - at - VECTORS_HEADER != count * (in_bytes + out_bytes)) {
    return TE_LC_BAD_IMAGE;
  }
  at += VECTORS_HEADER;
  for (v = 0; v < count; v++) {
    for (i = 0; i < te_model_info.num_inputs; i++) {
      if (te_store_read(at, te_runtime_input(i), te_model_info.inputs[i].bytes) != 0) return TE_LC_STORE;
      at += te_model_info.inputs[i].bytes;
    }
    if (te_runtime_reset_state() != TE_OK || te_runtime_invoke() != TE_OK) {
      *failed = v;
      return TE_LC_SELF_TEST;
    }
    for (i = 0; i < te_model_info.num_outputs; i++) {
      const uint8_t *out = te_runtime_output(i);
      uint32_t done = 0, n = te_model_info.outputs[i].bytes;
      uint8_t expected[CHUNK];
      while (done < n) {
        uint32_t part = n - done < CHUNK ? n - done : CHUNK;
        if (te_store_read(at + done, expected, part) != 0) return TE_LC_STORE;
        if (out == NULL || memcmp(out + done, expected, part) != 0) {
          *failed = v;
          return TE_LC_SELF_TEST;
        }
        done += part;
      }
      at += n;
    }
  }
  return TE_OK;
}

/* The boot record that names `slot` active: the one write that switches models. */
static uint8_t activate(uint8_t slot, uint32_t version, uint32_t image_bytes, const uint8_t *image_sha256,
                        const uint8_t *model_sha256) {
  te_boot_record_t *record = &te_lifecycle_record;
  record->previous = record->active;
  record->active.slot = slot;
  record->active.version = version;
  record->active.image_bytes = image_bytes;
  memcpy(record->active.image_sha256, image_sha256, 32);
  memcpy(record->active.model_sha256, model_sha256, 32);
  if (te_lifecycle_write_record() != 0) {
    record->active = record->previous;
    return TE_LC_STORE;
  }
  return TE_OK;
}

static uint32_t io_bytes(uint8_t outputs) {
  uint32_t total = 0;
  uint8_t i;
  uint8_t count = outputs ? te_model_info.num_outputs : te_model_info.num_inputs;
  for (i = 0; i < count; i++) {
    total += outputs ? te_model_info.outputs[i].bytes : te_model_info.inputs[i].bytes;
  }
  return total;
}

/* Where a shadowed inference keeps its input and the active model's outputs: after the candidate's image. */
static uint32_t shadow_scratch(void) { return slot_base(shadow.slot) + ((shadow.image_bytes + 3u) & ~3u); }

static uint8_t start_shadow(const uint8_t *body, uint32_t len) {
  uint32_t target = get_u32(body + 1);
  if (len != 7u || target == 0u) {
    return TE_PROTO_BAD_LENGTH;
  }
  if (((update.image_bytes + 3u) & ~3u) + io_bytes(0) + io_bytes(1) > slot_bytes()) {
    return TE_LC_TOO_BIG;
  }
  memset(&shadow, 0, sizeof shadow);
  shadow.report.outcome = TE_SHADOW_RUNNING;
  shadow.report.version = update.version;
  shadow.report.target = target;
  shadow.min_agreement_permille = (uint16_t)(body[5] | (body[6] << 8));
  shadow.slot = update.slot;
  shadow.image_bytes = update.image_bytes;
  memcpy(shadow.image_sha256, update.image_sha256, 32);
  memcpy(shadow.model_sha256, update.model_sha256, 32);
  return TE_OK;
}

#ifdef TE_SIGNED_UPDATES
/* The value of `"key": ` in the manifest (json.dumps of flat keys): a pointer past it, or NULL. */
static const uint8_t *manifest_value(const uint8_t *manifest, uint32_t len, const char *key) {
  uint32_t n = (uint32_t)strlen(key), i;
  for (i = 0; i + n + 4u <= len; i++) {
    if (manifest[i] == '"' && memcmp(manifest + i + 1, key, n) == 0 && manifest[i + 1 + n] == '"' &&
        manifest[i + 2 + n] == ':' && manifest[i + 3 + n] == ' ') {
      return manifest + i + 4 + n;
    }
  }
  return NULL;
}

static int hex_digest(const uint8_t *text, const uint8_t *end, uint8_t digest[32]) {
  uint32_t i;
  if (text == NULL || end - text < 66 || text[0] != '"') return -1;
  for (i = 0; i < 64u; i++) {
    uint8_t c = text[1 + i];
    uint8_t v = c >= '0' && c <= '9' ? (uint8_t)(c - '0') : c >= 'a' && c <= 'f' ? (uint8_t)(c - 'a' + 10) : 0xFFu;
    if (v == 0xFFu) return -1;
    digest[i / 2u] = (uint8_t)((i & 1u) ? digest[i / 2u] | v : v << 4);
  }
  return 0;
}

/* UPDATE_SIGNATURE: the manifest must be signed by the firmware's key; what it names is then
 * checked against the image at COMMIT. */
static uint8_t accept_signature(const uint8_t *body, uint32_t len) {
  const uint8_t *key = te_model_signing_key(), *manifest = body + 64, *end = body + len, *version;
  uint32_t value = 0;
  if (!update.open) return TE_LC_NO_UPDATE;
  if (key == NULL) return TE_OK;   /* no key: nothing to check */
  signed_manifest.verified = 0;
  if (len <= 64u || !te_ed25519_verify(body, key, manifest, len - 64u)) return TE_LC_BAD_SIGNATURE;
  version = manifest_value(manifest, len - 64u, "version");
  if (version == NULL || hex_digest(manifest_value(manifest, len - 64u, "model_sha256"), end,
                                    signed_manifest.model_sha256) != 0 ||
      hex_digest(manifest_value(manifest, len - 64u, "vectors_sha256"), end, signed_manifest.vectors_sha256) != 0) {
    return TE_LC_BAD_SIGNATURE;
  }
  while (version < end && *version >= '0' && *version <= '9') value = value * 10u + (uint32_t)(*version++ - '0');
  signed_manifest.version = value;
  signed_manifest.verified = 1;
  return TE_OK;
}

/* Firmware with a key activates only what its signed manifest names: this version, this model
 * (TFLM: the flatbuffer in the slot; AOT: the model named at BEGIN, whose compiled data must then
 * reproduce the signed self-test outputs) and these self-test vectors. */
static uint8_t check_signed(uint32_t base) {
  uint8_t digest[32], header[HEADER_BYTES];
  if (te_model_signing_key() == NULL) return TE_OK;
  if (!signed_manifest.verified || signed_manifest.version != update.version ||
      memcmp(signed_manifest.model_sha256, update.model_sha256, 32) != 0) {
    return TE_LC_BAD_SIGNATURE;
  }
  if (hash_stored(base + update.payload_bytes + VECTORS_HEADER,
                  update.image_bytes - update.payload_bytes - VECTORS_HEADER, digest) != 0) {
    return TE_LC_STORE;
  }
  if (memcmp(digest, signed_manifest.vectors_sha256, 32) != 0) return TE_LC_BAD_SIGNATURE;
  if (is_tflm()) {
    if (te_store_read(base, header, HEADER_BYTES) != 0 ||
        hash_stored(base + HEADER_BYTES, get_u32(header + 40), digest) != 0) {
      return TE_LC_STORE;
    }
    if (get_u32(header + 40) > update.payload_bytes || memcmp(digest, signed_manifest.model_sha256, 32) != 0) {
      return TE_LC_BAD_SIGNATURE;
    }
  }
  return TE_OK;
}
#else
static uint8_t check_signed(uint32_t base) {
  (void)base;
  return TE_OK;
}
#endif

static uint8_t commit(const uint8_t *body, uint32_t len, uint32_t *failed) {
  te_boot_record_t *record = &te_lifecycle_record;
  uint32_t base = slot_base(update.slot);
  uint8_t shadowing = len > 0u && body[0] == COMMIT_SHADOW;
  uint8_t digest[32];
  uint8_t status;
  *failed = 0;
  if (!update.open) {
    return TE_LC_NO_UPDATE;
  }
  if (update.received != update.image_bytes) {
    return TE_PROTO_BAD_SEQUENCE;
  }
  if (hash_stored(base, update.image_bytes, digest) != 0) {
    return TE_LC_STORE;
  }
  if (memcmp(digest, update.image_sha256, 32) != 0) {
    update.open = 0;
    return TE_LC_BAD_HASH;
  }
  status = check_signed(base);
  if (status != TE_OK) {
    update.open = 0;
    return status;
  }
  load_detail = 0;
  status = load_image(base);
  *failed = load_detail;
  if (status == TE_OK) {
    status = self_test(base + update.payload_bytes, base + update.image_bytes, failed);
  }
  if (status == TE_OK && shadowing) {
    status = start_shadow(body, len);
    (void)load_image(slot_base(record->active.slot));   /* the active model goes on answering */
    (void)te_runtime_reset_state();
    update.open = 0;
    return status;
  }
  if (status == TE_OK) {
    status = activate(update.slot, update.version, update.image_bytes, update.image_sha256, update.model_sha256);
  }
  if (status != TE_OK) {
    /* The old model back in place; the new image stays in the inactive slot, never active. */
    (void)load_image(slot_base(record->active.slot));
  }
  (void)te_runtime_reset_state();
  update.open = 0;
  return status;
}

static uint8_t rollback(void) {
  te_boot_record_t *record = &te_lifecycle_record;
  struct te_slot_state current = record->active;
  uint8_t status;
  if (record->previous.slot == TE_SLOT_BUILT_IN) {
    return TE_LC_NO_PREVIOUS;
  }
  status = verified_load(&record->previous);
  if (status != TE_OK) {
    (void)load_image(slot_base(current.slot));
    return status;
  }
  record->active = record->previous;
  record->previous = current;
  if (te_lifecycle_write_record() != 0) {
    record->previous = record->active;
    record->active = current;
    (void)load_image(slot_base(current.slot));
    return TE_LC_STORE;
  }
  (void)te_runtime_reset_state();
  return TE_OK;
}

void te_slots_shadow_report(te_shadow_report_t *report) { *report = shadow.report; }

void te_slots_before_invoke(void) {
  uint32_t at;
  uint8_t i;
  if (shadow.report.outcome != TE_SHADOW_RUNNING) {
    return;
  }
  at = shadow_scratch();
  for (i = 0; i < te_model_info.num_inputs; i++) {
    if (te_store_write(at, te_runtime_input(i), te_model_info.inputs[i].bytes) != 0) {
      shadow.report.outcome = TE_SHADOW_DROPPED;
      return;
    }
    at += te_model_info.inputs[i].bytes;
  }
}

/* The index of the first output's largest element (int8 or uint8). */
static uint32_t argmax(const uint8_t *data, uint32_t n, uint8_t is_signed) {
  uint32_t best = 0, i;
  for (i = 1; i < n; i++) {
    int16_t a = is_signed ? (int16_t)(int8_t)data[i] : (int16_t)data[i];
    int16_t b = is_signed ? (int16_t)(int8_t)data[best] : (int16_t)data[best];
    if (a > b) best = i;
  }
  return best;
}

/* Compare the candidate's outputs (in place) with the active model's (in the scratch area). */
static int compare_outputs(uint32_t at, uint8_t *exact, uint8_t *top1) {
  uint8_t i;
  uint8_t expected[CHUNK];
  *exact = 1;
  *top1 = 0;
  for (i = 0; i < te_model_info.num_outputs; i++) {
    const uint8_t *out = te_runtime_output(i);
    uint32_t n = te_model_info.outputs[i].bytes, done = 0;
    while (done < n) {
      uint32_t part = n - done < CHUNK ? n - done : CHUNK;
      if (out == NULL || te_store_read(at + done, expected, part) != 0) return -1;
      if (memcmp(out + done, expected, part) != 0) *exact = 0;
      done += part;
    }
    at += n;
  }
  return 0;
}

static uint32_t stored_argmax(uint32_t at) {
  uint8_t expected[CHUNK];
  uint32_t n = te_model_info.outputs[0].bytes, best = 0, index = 0, done = 0;
  int16_t best_value = -32768;
  uint8_t is_signed = te_model_info.outputs[0].dtype == TE_INT8;
  while (done < n) {
    uint32_t part = n - done < CHUNK ? n - done : CHUNK, i;
    if (te_store_read(at + done, expected, part) != 0) return 0;
    for (i = 0; i < part; i++, index++) {
      int16_t v = is_signed ? (int16_t)(int8_t)expected[i] : (int16_t)expected[i];
      if (v > best_value) { best_value = v; best = index; }
    }
    done += part;
  }
  return best;
}

/* The outputs the active model computed, back where the protocol streams (and replays) them from. */
static int restore_outputs(uint32_t at) {
  uint8_t i;
  for (i = 0; i < te_model_info.num_outputs; i++) {
    if (te_store_read(at, (void *)te_runtime_output(i), te_model_info.outputs[i].bytes) != 0) return -1;
    at += te_model_info.outputs[i].bytes;
  }
  return 0;
}

/* Promotion needs enough agreement: top-1 for a classifier (a first output of several elements),
 * exact for a regression (a single output value, whose top-1 always agrees). */
static void finish_shadow(void) {
  uint32_t needed = (uint32_t)(((uint64_t)shadow.report.target * shadow.min_agreement_permille + 999u) / 1000u);
  uint32_t agreed = te_model_info.outputs[0].bytes > 1u ? shadow.report.top1 : shadow.report.exact;
  if (agreed >= needed &&
      activate(shadow.slot, shadow.report.version, shadow.image_bytes, shadow.image_sha256, shadow.model_sha256) == TE_OK) {
    (void)load_image(slot_base(shadow.slot));
    shadow.report.outcome = TE_SHADOW_PROMOTED;
  } else {
    (void)load_image(slot_base(te_lifecycle_record.active.slot));
    shadow.report.outcome = TE_SHADOW_DROPPED;
  }
  (void)te_runtime_reset_state();
}

/* After the active model answered a live inference: run the candidate on the same input, count its
 * agreement, put the active model and its outputs back; promote or drop after the last one. */
void te_slots_after_invoke(uint8_t status) {
  uint32_t inputs_at, outputs_at, at;
  uint8_t i, exact, top1;
  if (shadow.report.outcome != TE_SHADOW_RUNNING || status != TE_OK) {
    return;
  }
  inputs_at = shadow_scratch();
  outputs_at = inputs_at + io_bytes(0);
  at = outputs_at;
  for (i = 0; i < te_model_info.num_outputs; i++) {
    if (te_store_write(at, te_runtime_output(i), te_model_info.outputs[i].bytes) != 0) goto fail;
    at += te_model_info.outputs[i].bytes;
  }
  if (load_image(slot_base(shadow.slot)) != TE_OK) goto fail;
  at = inputs_at;
  for (i = 0; i < te_model_info.num_inputs; i++) {
    if (te_store_read(at, te_runtime_input(i), te_model_info.inputs[i].bytes) != 0) goto fail;
    at += te_model_info.inputs[i].bytes;
  }
  if (te_runtime_invoke() != TE_OK || compare_outputs(outputs_at, &exact, &top1) != 0) goto fail;
  top1 = argmax(te_runtime_output(0), te_model_info.outputs[0].bytes, te_model_info.outputs[0].dtype == TE_INT8) ==
         stored_argmax(outputs_at);
  if (load_image(slot_base(te_lifecycle_record.active.slot)) != TE_OK || restore_outputs(outputs_at) != 0) goto fail;
  shadow.report.done++;
  shadow.report.exact += exact;
  shadow.report.top1 += top1;
  if (shadow.report.done >= shadow.report.target) {
    finish_shadow();
  }
  return;
fail:
  (void)load_image(slot_base(te_lifecycle_record.active.slot));
  (void)restore_outputs(outputs_at);
  shadow.report.outcome = TE_SHADOW_DROPPED;
}

uint8_t te_slots_dispatch(uint8_t type, uint32_t id, const uint8_t *body, uint32_t len) {
  uint32_t failed;
  uint8_t status;
  if (type < TE_MSG_UPDATE_BEGIN || type > TE_MSG_UPDATE_SIGNATURE) {
    return 0;
  }
  if (!usable) {
    reply(type, id, TE_LC_NO_SLOTS);
    return 1;
  }
  switch (type) {
    case TE_MSG_UPDATE_BEGIN:
      handle_begin(id, body, len);
      break;
    case TE_MSG_UPDATE_DATA:
      reply(type, id, accept_data(body, len));
      break;
    case TE_MSG_UPDATE_COMMIT:
      status = commit(body, len, &failed);
      te_proto_reply_begin(type, id, status);
      if (status == TE_LC_SELF_TEST || status == TE_LC_MISSING_OP || status == TE_LC_ARENA) {
        uint8_t bytes[4];   /* the failing vector, the missing op's builtin code, the arena's bytes */
        bytes[0] = (uint8_t)failed;
        bytes[1] = (uint8_t)(failed >> 8);
        bytes[2] = (uint8_t)(failed >> 16);
        bytes[3] = (uint8_t)(failed >> 24);
        te_proto_put(bytes, 4);
      }
      te_proto_reply_end();
      break;
    case TE_MSG_UPDATE_SIGNATURE:
#ifdef TE_SIGNED_UPDATES
      reply(type, id, accept_signature(body, len));
#else
      reply(type, id, te_model_signing_key() == NULL ? TE_OK : TE_LC_BAD_SIGNATURE);
#endif
      break;
    default:
      reply(type, id, rollback());
      break;
  }
  return 1;
}

#endif
