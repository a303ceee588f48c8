/* The model's lifecycle on the board (docs/protocol.md, "Lifecycle requests"): telemetry (STATS),
 * the boot record kept in the persistent store (te_store.h) and, in updatable firmware, the two
 * model slots and the update requests (te_slots.c). te_protocol.c calls the three hooks below; a
 * build without te_lifecycle.c (the Uno: no room) links weak defaults that answer these requests
 * with a NAK "unknown request". Define TE_LIFECYCLE=0 to compile these files to nothing. */
#ifndef TE_LIFECYCLE_H
#define TE_LIFECYCLE_H

#include <stdint.h>

/* Updatable firmware (generate --updatable) links te_slots.c, the rest te_slots_none.c; signed updates
 * are updates. */
#if defined(TE_SIGNED_UPDATES) && !defined(TE_UPDATABLE)
#define TE_UPDATABLE 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define TE_MSG_STATS 0x10          /* -> status, telemetry */
#define TE_MSG_UPDATE_BEGIN 0x11   /* image description -> status, slot, bytes already received */
#define TE_MSG_UPDATE_DATA 0x12    /* offset u32, image bytes -> status */
#define TE_MSG_UPDATE_COMMIT 0x13  /* -> status, failing vector u32: check, self-test, activate */
#define TE_MSG_ROLLBACK 0x14       /* -> status: the previous model active again */
#define TE_MSG_UPDATE_SIGNATURE 0x15 /* Ed25519 signature[64], the bundle's manifest -> status */

#define TE_STATS_VERSION 1
#define TE_SLOT_BUILT_IN 0xFFu     /* the model compiled into the firmware, not a slot */

/* Lifecycle statuses (after the protocol's 0x10-0x1F). */
enum te_lifecycle_status {
  TE_LC_NO_SLOTS = 0x20,       /* the firmware was not generated --updatable, or the board has no store */
  TE_LC_DOWNGRADE = 0x21,      /* the version is not above the active one */
  TE_LC_TOO_BIG = 0x22,        /* the image does not fit a slot */
  TE_LC_BAD_HASH = 0x23,       /* the received image's SHA-256 differs from the announced one */
  TE_LC_OTHER_GRAPH = 0x24,    /* the model is compiled for another graph */
  TE_LC_SELF_TEST = 0x25,      /* a self-test vector's outputs differed */
  TE_LC_NO_UPDATE = 0x26,      /* DATA/COMMIT without a BEGIN (or after a reset): begin again */
  TE_LC_STORE = 0x27,          /* the persistent store failed to read or write */
  TE_LC_BAD_IMAGE = 0x28,      /* the image is malformed (header, sizes, vectors) */
  TE_LC_NO_PREVIOUS = 0x29,    /* ROLLBACK without a previous model */
  TE_LC_MISSING_OP = 0x2A,     /* the model needs an op the firmware lacks (detail: its builtin code) */
  TE_LC_ARENA = 0x2B,          /* the model does not fit the tensor arena (detail: the arena's bytes) */
  TE_LC_BAD_SIGNATURE = 0x2C   /* the image's Ed25519 signature is missing or wrong */
};

/* What survives a reset: written alternately to two places, each sealed by its CRC-32, so a power
 * cut while one is written leaves the other (the previous record) in force. */
typedef struct {
  uint32_t magic;
  uint32_t seq;                /* the newer valid copy wins */
  uint32_t boots;
  uint8_t firmware_sha256[32]; /* the built-in model of the firmware that wrote it: a re-flash starts over */
  struct te_slot_state {
    uint32_t version;
    uint32_t image_bytes;
    uint8_t model_sha256[32];
    uint8_t image_sha256[32];
    uint8_t slot;              /* TE_SLOT_BUILT_IN, or 0 / 1 */
    uint8_t reserved[3];
  } active, previous;
  uint32_t crc;                /* over everything before it */
} te_boot_record_t;

extern te_boot_record_t te_lifecycle_record;

/* Seal te_lifecycle_record with the next seq and write it over the older copy; 0 on success. */
int te_lifecycle_write_record(void);

/* Updatable firmware: the model's data that an update replaces, described by the generated
 * te_model.c (AOT) or the TFLM runtime. Firmware that is not updatable has none (weak NULL).
 * AOT (kind 1): fixed arrays and scalars, loaded in place, for the compiled graph.
 * TFLM (kind 2): one array, the built-in .tflite (what slot 0 starts with); an image's model of any
 * size up to `capacity` is read into `buffer` and `reload` rebuilds the interpreter on it. */
#define TE_SLOT_KIND_AOT 1u
#define TE_SLOT_KIND_TFLM 2u
typedef struct {
  void *data;
  uint32_t bytes;
} te_slot_array_t;

typedef struct {
  uint8_t graph[32];               /* what the code was compiled for */
  const te_slot_array_t *arrays;
  uint16_t array_count;
  int32_t *scalars;                /* the built-in values until a slot is loaded */
  uint16_t scalar_count;
  void (*apply_scalars)(void);     /* copy `scalars` into the model's parameter structs */
  uint8_t kind;                    /* TE_SLOT_KIND_* */
  uint8_t *buffer;                 /* TFLM: where a slot's model is loaded */
  uint32_t capacity;               /* TFLM: the buffer's bytes */
  /* TFLM: run the model now in `buffer` (its first `bytes`); a TE_LC_* status, *detail as documented. */
  uint8_t (*reload)(uint32_t bytes, uint32_t *detail);
  /* TFLM: stop using `buffer` before it is overwritten (the interpreter reads its model until destroyed). */
  void (*release)(void);
} te_slot_layout_t;

const te_slot_layout_t *te_model_slot_layout(void);

/* The Ed25519 public key updates must be signed with (generate --signing-key), or NULL (weak). */
const uint8_t *te_model_signing_key(void);

/* te_slots.c: at boot, load the active slot (or save the built-in model into slot 0); a request. */
void te_slots_boot(uint8_t persistent);
uint8_t te_slots_dispatch(uint8_t type, uint32_t id, const uint8_t *body, uint32_t len);
uint8_t te_slots_updatable(void);
void te_slots_before_invoke(void);
void te_slots_after_invoke(uint8_t status);

/* A model on trial (UPDATE_COMMIT in shadow mode): run beside the active one on live inferences. */
enum te_shadow_outcome { TE_SHADOW_NONE = 0, TE_SHADOW_RUNNING = 1, TE_SHADOW_PROMOTED = 2, TE_SHADOW_DROPPED = 3 };
typedef struct {
  uint8_t outcome;
  uint32_t version;
  uint32_t target;
  uint32_t done;
  uint32_t exact;   /* every output byte equal */
  uint32_t top1;    /* the first output's largest element at the same index */
} te_shadow_report_t;
void te_slots_shadow_report(te_shadow_report_t *report);

/* te_protocol.c's hooks. At boot, before te_runtime_init(): read the boot record, count the boot. */
void te_lifecycle_boot(void);

/* Before every INFER's invoke, and after it: its status and µs (0xFFFFFFFF when unknown). */
void te_lifecycle_before_invoke(void);
void te_lifecycle_on_infer(uint8_t status, uint32_t micros);

/* A request te_protocol.c does not know; returns 1 when it was answered here. */
uint8_t te_lifecycle_dispatch(uint8_t type, uint32_t id, const uint8_t *body, uint32_t len);

#ifdef __cplusplus
}
#endif

#endif
