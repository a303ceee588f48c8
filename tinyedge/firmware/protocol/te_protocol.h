/* tinyedge serial protocol, device side (see docs/protocol.md).
 *
 * Every frame, both ways, is 0x00, rCOBS(type u8, request id u32, body, CRC-32 LE), 0x00. The host
 * chooses each request's id; every reply and NAK echoes it, so a stale or replayed reply is never
 * taken for the answer to another request.
 * The device never buffers a reply: it streams it out while encoding and checksumming it. It keeps
 * its last INFER reply's cycles and µs so that a retransmitted INFER is answered without running
 * the model again (docs/protocol.md, "Idempotent requests").
 * The only buffer is one received frame, bounded by TE_PROTO_MAX_CHUNK input bytes.
 *
 * Compile-time settings:
 *   TE_PROTO_MAX_CHUNK   input bytes per WRITE/INFER frame (announced to the host), or
 *   TE_PROTO_RX_BUFFER   the UART receive buffer in bytes; TE_PROTO_MAX_CHUNK is derived from it
 *                        so that one whole request frame on the wire fits in that buffer.
 *   TE_PROTO_TX_BUFFER   bytes staged before each te_port_write() call (default 16).
 *   TE_PROTO_POLL_MS     how long te_protocol_poll() waits for a byte (default 10).
 */
#ifndef TE_PROTOCOL_H
#define TE_PROTOCOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_PROTO_VERSION 2

/* Bytes of a WRITE/INFER frame besides its input bytes: type, request id (u32), offset (u32), CRC-32. */
#define TE_PROTO_DATA_OVERHEAD 13

#ifndef TE_PROTO_MAX_CHUNK
#ifdef TE_PROTO_RX_BUFFER
/* Leading and trailing 0x00, the frame overhead, one rCOBS code plus one per 254 bytes. */
#define TE_PROTO_MAX_CHUNK (TE_PROTO_RX_BUFFER - TE_PROTO_DATA_OVERHEAD - 3 - TE_PROTO_RX_BUFFER / 255)
#else
#define TE_PROTO_MAX_CHUNK 48
#endif
#endif

#ifndef TE_PROTO_TX_BUFFER
#define TE_PROTO_TX_BUFFER 16
#endif

#ifndef TE_PROTO_POLL_MS
#define TE_PROTO_POLL_MS 10
#endif

/* Message types. Replies carry the request type with the top bit set. */
enum te_msg_type {
  TE_MSG_PING = 0x01,      /* -> status, protocol version, max chunk */
  TE_MSG_INFO = 0x02,      /* -> status, model and board description */
  TE_MSG_WRITE = 0x03,     /* offset u32, input bytes -> status */
  TE_MSG_INFER = 0x04,     /* offset u32, last input bytes -> status, cycles, micros, outputs */
  TE_MSG_SET_ARENA = 0x05, /* bytes u32 -> status, arena used, arena size */
  TE_MSG_RESET_STATE = 0x06, /* -> status: the model's state tensors back to their boot values */
  TE_MSG_REPLY = 0x80,     /* OR-ed into the request type */
  TE_MSG_BOOT = 0x80,      /* unsolicited, id 0: the device (re)started; body: protocol version */
  TE_MSG_NAK = 0xFF        /* a frame that could not be read or had an unknown type; body: status */
};

/* Status codes 0-15 are the runtime's enum te_status; the protocol's own start at 0x10. */
enum te_proto_status {
  TE_PROTO_BAD_CRC = 0x10,      /* the frame's CRC-32 did not match */
  TE_PROTO_BAD_LENGTH = 0x11,   /* frame too long or too short, or data past the end of the inputs */
  TE_PROTO_BAD_FRAME = 0x12,    /* the rCOBS encoding was broken */
  TE_PROTO_BAD_TYPE = 0x13,     /* unknown message type */
  TE_PROTO_BAD_SEQUENCE = 0x14  /* WRITE/INFER offset beyond what was received: restart from 0 */
};

/* Reset the protocol state and announce the boot to the host (0x00, BOOT frame).
 * runtime_status is what te_runtime_init() returned; INFER answers it while it is not TE_OK. */
void te_protocol_begin(int runtime_status);

/* Wait up to TE_PROTO_POLL_MS for bytes and handle them; answers any request that completes.
 * Call it from Arduino's loop(). */
void te_protocol_poll(void);

/* Handle one received byte (te_protocol_poll() calls this; exposed for interrupt-driven ports). */
void te_protocol_rx_byte(uint8_t byte);

/* te_protocol_begin(TE_OK) unless it was already called, then poll forever. */
void te_protocol_serve_forever(void);

/* A reply composed outside te_protocol.c (te_lifecycle.c): begin it, stream its body, end it. */
void te_proto_reply_begin(uint8_t type, uint32_t id, uint8_t status);
void te_proto_put(const void *data, uint32_t len);
void te_proto_reply_end(void);

/* The boot sequence every board uses (te_main.c):
 * te_port_init(baud); status = te_runtime_init(); te_port_boot_banner(TE_BOOT_BANNER);
 * te_protocol_begin(status). te_main() then serves forever; Arduino sketches call te_setup()
 * from setup() and te_protocol_poll() from loop(). */
void te_setup(uint32_t baud);
void te_main(uint32_t baud);

#ifdef __cplusplus
}
#endif

#endif
