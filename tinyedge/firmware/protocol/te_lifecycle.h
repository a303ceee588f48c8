/* The model's lifecycle on the board (docs/protocol.md, "Lifecycle requests"): telemetry (STATS)
 * and the boot record kept in the persistent store (te_store.h). te_protocol.c calls the three
 * hooks below; a build without te_lifecycle.c (the Uno: no room) links weak defaults that answer
 * STATS with a NAK "unknown request". Define TE_LIFECYCLE=0 to compile this file to nothing. */
#ifndef TE_LIFECYCLE_H
#define TE_LIFECYCLE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_MSG_STATS 0x10   /* -> status, telemetry (docs/protocol.md) */

#define TE_STATS_VERSION 1
#define TE_SLOT_BUILT_IN 0xFFu   /* the model compiled into the firmware, not a slot */

/* At boot, before te_runtime_init(): read the boot record and count the boot. */
void te_lifecycle_boot(void);

/* After every INFER that ran the model: its status and µs (0xFFFFFFFF when unknown). */
void te_lifecycle_on_infer(uint8_t status, uint32_t micros);

/* A request te_protocol.c does not know; returns 1 when it was answered here. */
uint8_t te_lifecycle_dispatch(uint8_t type, uint8_t seq, const uint8_t *body, uint32_t len);

#ifdef __cplusplus
}
#endif

#endif
