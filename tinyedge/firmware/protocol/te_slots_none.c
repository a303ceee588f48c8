/* Firmware generated without --updatable: no model slots, and none of their RAM (the update in
 * progress, the shadow trial, SHA-256 contexts on the stack). The update requests are answered
 * TE_LC_NO_SLOTS, as te_slots.c answers them on a board without a store. */
#include "te_lifecycle.h"

#if !defined(TE_LIFECYCLE) && !defined(__AVR__)
#define TE_LIFECYCLE 1
#endif

#if TE_LIFECYCLE && !defined(TE_UPDATABLE)

#include <string.h>

#include "te_protocol.h"

void te_slots_boot(uint8_t persistent) { (void)persistent; }

uint8_t te_slots_updatable(void) { return 0; }

void te_slots_before_invoke(void) {}

void te_slots_after_invoke(uint8_t status) { (void)status; }

void te_slots_shadow_report(te_shadow_report_t *report) { memset(report, 0, sizeof *report); }

uint8_t te_slots_dispatch(uint8_t type, uint32_t id, const uint8_t *body, uint32_t len) {
  (void)body;
  (void)len;
  if (type < TE_MSG_UPDATE_BEGIN || type > TE_MSG_UPDATE_SIGNATURE) {
    return 0;
  }
  te_proto_reply_begin(type, id, TE_LC_NO_SLOTS);
  te_proto_reply_end();
  return 1;
}

#endif
