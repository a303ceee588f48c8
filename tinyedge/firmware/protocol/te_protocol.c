/* tinyedge serial protocol, device side. C99, no malloc, fixed-width types (int is 16-bit on AVR).
 * Frame layout, message types and flow control are described in docs/protocol.md. */
#include "te_protocol.h"

#include <stddef.h>
#include <string.h>

#include "te_lifecycle.h"
#include "tinyedge_model_info.h"
#include "tinyedge_port.h"
#include "tinyedge_runtime.h"

#if TE_PROTO_MAX_CHUNK < 1
#error "TE_PROTO_MAX_CHUNK must be at least 1 (TE_PROTO_RX_BUFFER too small?)"
#endif
#if TE_PROTO_TX_BUFFER < 1 || TE_PROTO_TX_BUFFER > 255
#error "TE_PROTO_TX_BUFFER must be between 1 and 255"
#endif

/* The largest decoded frame is a full WRITE; its rCOBS encoding adds one code per 254 bytes. */
#define RAW_MAX (TE_PROTO_MAX_CHUNK + TE_PROTO_DATA_OVERHEAD)
#define FRAME_MAX (RAW_MAX + 1u + RAW_MAX / 254u)

#if FRAME_MAX > 65535u
typedef uint32_t te_len_t;
#else
typedef uint16_t te_len_t;
#endif

#define HEADER_BYTES 5u /* type u8, request id u32 */
#define CRC_BYTES 4u
#define NO_MICROS 0xFFFFFFFFUL
#define RUN_MAX 254u
/* The CRC register after a frame followed by its own (inverted, little-endian) CRC-32. */
#define CRC_RESIDUE 0xDEBB20E3UL

typedef char te_float_is_32_bits[(sizeof(float) == 4) ? 1 : -1];

static uint8_t rx_buf[FRAME_MAX];
static te_len_t rx_len;
static uint8_t rx_overflow;

static uint8_t tx_buf[TE_PROTO_TX_BUFFER];
static uint8_t tx_fill;
static uint8_t tx_run;
static uint32_t crc;

/* Input bytes [0, received_end) arrived since the last WRITE/INFER at offset 0, and the model has
 * not run since: an invoke may reuse input memory, so it starts the next input over. */
static uint32_t received_end;

/* The id the host chose for the request being answered (echoed in every reply, so that a stale,
 * replayed or misrouted reply can never pass for the answer to another request), and the CRC of its
 * frame. They also identify the last INFER, kept so that its retransmission (the reply was lost on
 * the way back) is answered with the outputs already computed instead of running the model again on
 * reused input memory. Valid until any other request is handled; the outputs stay in place until then. */
static uint8_t replay_valid;
static uint32_t request_id;
static uint32_t request_crc;
static uint32_t replay_cycles;
static uint32_t replay_micros;
static int8_t runtime_status;
static uint8_t begun;

/* The running CRC-32 (IEEE 802.3, reflected), shared by the receive check and the transmit path. */
static void crc_feed(uint8_t byte) {
  uint8_t bit;
  crc ^= byte;
  for (bit = 0; bit < 8u; bit++) {
    crc = (crc >> 1) ^ (0xEDB88320UL & (0UL - (crc & 1UL)));
  }
}

/* ---- transmit: rCOBS needs no lookahead, so replies stream straight from tensor memory ---- */

static void tx_flush(void) {
  if (tx_fill) {
    te_port_write(tx_buf, tx_fill);
    tx_fill = 0;
  }
}

static void tx_wire(uint8_t byte) {
  tx_buf[tx_fill++] = byte;
  if (tx_fill == sizeof tx_buf) {
    tx_flush();
  }
}

static void tx_encode(uint8_t byte) {
  if (byte == 0) {
    tx_wire((uint8_t)(tx_run + 1u));
    tx_run = 0;
    return;
  }
  tx_wire(byte);
  if (++tx_run == RUN_MAX) {
    tx_wire(0xFF);
    tx_run = 0;
  }
}

static void put_u8(uint8_t byte) {
  crc_feed(byte);
  tx_encode(byte);
}

static void put_u32(uint32_t value) {
  uint8_t i;
  for (i = 0; i < 4u; i++) {
    put_u8((uint8_t)value);
    value >>= 8;
  }
}

static void put_bytes(const uint8_t *data, uint32_t len) {
  while (len--) {
    put_u8(*data++);
  }
}

static void put_string(const char *text) {
  size_t len = text ? strlen(text) : 0u;
  if (len > 255u) {
    len = 255u;
  }
  put_u8((uint8_t)len);
  put_bytes((const uint8_t *)text, (uint32_t)len);
}

static void put_f32(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  put_u32(bits);
}

/* Every frame starts with 0x00 too, so text the board printed (a library's log on the same port)
 * ends up in a piece of its own and can never corrupt the frame. */
static void tx_begin(uint8_t type, uint32_t id) {
  tx_wire(0);
  crc = 0xFFFFFFFFUL;
  tx_run = 0;
  put_u8(type);
  put_u32(id);
}

static void tx_end(void) {
  uint32_t check = ~crc;
  uint8_t i;
  for (i = 0; i < 4u; i++) {
    tx_encode((uint8_t)check);
    check >>= 8;
  }
  tx_wire((uint8_t)(tx_run + 1u));
  tx_wire(0);
  tx_flush();
}

/* A reply to the request being handled: its type with the top bit set and its id. */
static void reply_begin(uint8_t type, uint8_t status) {
  tx_begin((uint8_t)(type | TE_MSG_REPLY), request_id);
  put_u8(status);
}

static void reply_status(uint8_t type, uint8_t status) {
  reply_begin(type, status);
  tx_end();
}

static void send_nak(uint32_t id, uint8_t status) {
  tx_begin(TE_MSG_NAK, id);
  put_u8(status);
  tx_end();
}

/* For replies composed outside this file (te_lifecycle.c): same framing, same streaming; `id` is the
 * request's, which the reply echoes (it is the request being handled: checked, not trusted). */
void te_proto_reply_begin(uint8_t type, uint32_t id, uint8_t status) {
  (void)id;
  reply_begin(type, status);
}
void te_proto_put(const void *data, uint32_t len) { put_bytes((const uint8_t *)data, len); }
void te_proto_reply_end(void) { tx_end(); }

/* Builds without te_lifecycle.c (the Uno) keep these defaults: no STATS, nothing counted. */
__attribute__((weak)) void te_lifecycle_boot(void) {}
__attribute__((weak)) void te_lifecycle_before_invoke(void) {}
__attribute__((weak)) void te_lifecycle_on_infer(uint8_t status, uint32_t micros) { (void)status; (void)micros; }
__attribute__((weak)) uint8_t te_lifecycle_dispatch(uint8_t type, uint32_t id, const uint8_t *body, uint32_t len) {
  (void)type; (void)id; (void)body; (void)len;
  return 0;
}

/* ---- receive ---- */

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Decode rx_buf[0, rx_len) in place, from the end (each code byte follows its run).
 * Returns where the decoded bytes start (they end at rx_len), or rx_len + 1 if malformed. */
static te_len_t rcobs_decode_in_place(void) {
  te_len_t read = rx_len;
  te_len_t write = rx_len;
  uint8_t last_code = 1;
  while (read > 0) {
    uint8_t code = rx_buf[--read];
    uint8_t i;
    if (!last_code && code != 0xFF) {
      rx_buf[--write] = 0;
    }
    last_code = 0;
    if ((te_len_t)(code - 1u) > read) {
      return (te_len_t)(rx_len + 1u);
    }
    for (i = 1; i < code; i++) {
      rx_buf[--write] = rx_buf[--read];
    }
  }
  return write;
}

/* WRITE and INFER bodies: offset u32, then input bytes for [offset, offset + count) of the
 * concatenated input tensors. An offset of 0 starts a new input; a later offset must not leave a gap. */
static uint8_t accept_input(const uint8_t *body, te_len_t len, uint8_t is_last) {
  uint32_t offset;
  uint32_t end;
  uint32_t base = 0;
  uint8_t i;
  if (len < 4u) {
    return TE_PROTO_BAD_LENGTH;
  }
  if (runtime_status != TE_OK) {
    return (uint8_t)runtime_status;
  }
  offset = get_u32(body);
  end = offset + (te_len_t)(len - 4u);
  body += 4;
  if (offset == 0u) {
    received_end = 0;
  }
  if (offset > received_end) {
    return TE_PROTO_BAD_SEQUENCE;
  }
  for (i = 0; i < te_model_info.num_inputs; i++) {
    base += te_model_info.inputs[i].bytes;
  }
  if (end > base || (is_last && end != base)) {
    return TE_PROTO_BAD_LENGTH;
  }
  base = 0;
  for (i = 0; i < te_model_info.num_inputs && offset < end; i++) {
    uint32_t next = base + te_model_info.inputs[i].bytes;
    if (offset < next) {
      te_len_t n = (te_len_t)((end < next ? end : next) - offset);
      uint8_t *tensor = te_runtime_input(i);
      if (tensor == NULL) {
        return TE_ERR_INIT;
      }
      memcpy(tensor + (offset - base), body, n);
      body += n;
      offset += n;
    }
    base = next;
  }
  if (end > received_end) {
    received_end = end;
  }
  return TE_OK;
}

static void put_tensor(const te_tensor_info_t *t) {
  uint8_t rank = t->rank < TE_MAX_DIMS ? t->rank : TE_MAX_DIMS;
  uint8_t d;
  put_u8(t->dtype);
  put_u8(rank);
  for (d = 0; d < rank; d++) {
    put_u32((uint32_t)t->dims[d]);
  }
  put_u32(t->bytes);
  put_f32(t->scale);
  put_u32((uint32_t)t->zero_point);
}

/* Ports that cannot measure their stack (all but mps2 so far) leave this default in place. */
__attribute__((weak)) uint32_t te_port_stack_used(void) { return 0; }

static void handle_info(void) {
  /* Measured before the reply starts: a painted-stack scan takes milliseconds, and a pause in the
   * middle of a frame looks like a lost frame end to a host on a slow line. */
  uint32_t stack_used = te_port_stack_used();
  uint8_t i;
  reply_begin(TE_MSG_INFO, TE_OK);
  put_u8(TE_PROTO_VERSION);
  put_u8((uint8_t)runtime_status);
  put_u32(TE_PROTO_MAX_CHUNK);
  put_u32(te_model_info.clock_hz);
  put_u32(te_port_cycle_hz());
  put_u32(te_runtime_arena_used());
  put_u32(te_runtime_arena_size());
  put_bytes(te_model_info.model_sha256, sizeof te_model_info.model_sha256);
  put_string(te_model_info.board_id);
  put_string(te_runtime_name());
  put_string(te_runtime_version());
  put_u8(te_model_info.num_inputs);
  put_u8(te_model_info.num_outputs);
  for (i = 0; i < te_model_info.num_inputs; i++) {
    put_tensor(&te_model_info.inputs[i]);
  }
  for (i = 0; i < te_model_info.num_outputs; i++) {
    put_tensor(&te_model_info.outputs[i]);
  }
  put_u32(stack_used);
  tx_end();
}

static uint8_t outputs_ready(void) {
  uint8_t i;
  for (i = 0; i < te_model_info.num_outputs; i++) {
    if (te_runtime_output(i) == NULL) {
      return 0;
    }
  }
  return 1;
}

static void reply_outputs(void) {
  uint8_t i;
  reply_begin(TE_MSG_INFER, TE_OK);
  put_u32(replay_cycles);
  put_u32(replay_micros);
  for (i = 0; i < te_model_info.num_outputs; i++) {
    put_bytes(te_runtime_output(i), te_model_info.outputs[i].bytes);
  }
  tx_end();
}

static void handle_infer(const uint8_t *body, te_len_t len) {
  uint8_t status = accept_input(body, len, 1);
  uint32_t cycles0;
  uint32_t micros0;
  uint32_t micros1;
  if (status != TE_OK) {
    reply_status(TE_MSG_INFER, status);
    return;
  }
  received_end = 0;
  te_lifecycle_before_invoke();
  micros0 = te_port_micros();
  cycles0 = te_port_cycles();
  status = (uint8_t)te_runtime_invoke();
  replay_cycles = te_port_cycles() - cycles0;
  micros1 = te_port_micros();
  replay_micros = (micros0 | micros1) ? micros1 - micros0 : NO_MICROS;
  if (status == TE_OK && !outputs_ready()) {
    status = TE_ERR_INVOKE;
  }
  te_lifecycle_on_infer(status, replay_micros);
  if (status != TE_OK) {
    reply_status(TE_MSG_INFER, status);
    return;
  }
  replay_valid = 1;
  reply_outputs();
}

static void handle_set_arena(const uint8_t *body, te_len_t len) {
  uint8_t status;
  if (len != 4u) {
    reply_status(TE_MSG_SET_ARENA, TE_PROTO_BAD_LENGTH);
    return;
  }
  status = (uint8_t)te_runtime_set_arena(get_u32(body));
  if (status != TE_ERR_UNSUPPORTED) {
    runtime_status = (int8_t)status;
  }
  received_end = 0;
  reply_begin(TE_MSG_SET_ARENA, status);
  put_u32(te_runtime_arena_used());
  put_u32(te_runtime_arena_size());
  tx_end();
}

/* frame_crc identifies the request's bytes: only the very same INFER frame (same id, same CRC) is
 * answered again. */
static void dispatch(uint8_t type, uint32_t id, const uint8_t *body, te_len_t len, uint32_t frame_crc) {
  if (type == TE_MSG_INFER && replay_valid && id == request_id && frame_crc == request_crc) {
    reply_outputs();
    return;
  }
  replay_valid = 0;
  request_id = id;
  request_crc = frame_crc;
  switch (type) {
    case TE_MSG_PING:
      reply_begin(TE_MSG_PING, TE_OK);
      put_u8(TE_PROTO_VERSION);
      put_u32(TE_PROTO_MAX_CHUNK);
      tx_end();
      break;
    case TE_MSG_INFO:
      handle_info();
      break;
    case TE_MSG_WRITE:
      reply_status(TE_MSG_WRITE, accept_input(body, len, 0));
      break;
    case TE_MSG_INFER:
      handle_infer(body, len);
      break;
    case TE_MSG_SET_ARENA:
      handle_set_arena(body, len);
      break;
    case TE_MSG_RESET_STATE:
      received_end = 0;
      reply_status(TE_MSG_RESET_STATE, (uint8_t)te_runtime_reset_state());
      break;
    default:
      if (!te_lifecycle_dispatch(type, id, body, len)) {
        send_nak(id, TE_PROTO_BAD_TYPE);
      }
      break;
  }
}

static void handle_frame(void) {
  te_len_t start;
  te_len_t len;
  const uint8_t *frame;
  uint32_t id;
  te_len_t i;
  if (rx_overflow) {
    send_nak(0, TE_PROTO_BAD_LENGTH);
    return;
  }
  start = rcobs_decode_in_place();
  if (start > rx_len) {
    send_nak(0, TE_PROTO_BAD_FRAME);
    return;
  }
  frame = rx_buf + start;
  len = (te_len_t)(rx_len - start);
  id = len >= HEADER_BYTES ? get_u32(frame + 1) : 0u;
  if (len < HEADER_BYTES + CRC_BYTES) {
    send_nak(id, TE_PROTO_BAD_LENGTH);
    return;
  }
  crc = 0xFFFFFFFFUL;
  for (i = 0; i < len; i++) {
    crc_feed(frame[i]);
  }
  len = (te_len_t)(len - CRC_BYTES);
  if (crc != CRC_RESIDUE) {
    send_nak(id, TE_PROTO_BAD_CRC);
    return;
  }
  dispatch(frame[0], id, frame + HEADER_BYTES, (te_len_t)(len - HEADER_BYTES), get_u32(frame + len));
}

void te_protocol_rx_byte(uint8_t byte) {
  if (byte != 0) {
    if (rx_len < FRAME_MAX) {
      rx_buf[rx_len++] = byte;
    } else {
      rx_overflow = 1;
    }
    return;
  }
  if (rx_len != 0u || rx_overflow) {
    handle_frame();
  }
  rx_len = 0;
  rx_overflow = 0;
}

void te_protocol_begin(int runtime_status_at_boot) {
  rx_len = 0;
  rx_overflow = 0;
  tx_fill = 0;
  received_end = 0;
  replay_valid = 0;
  runtime_status = (int8_t)runtime_status_at_boot;
  begun = 1;
  request_id = 0;
  tx_begin(TE_MSG_BOOT, 0);
  put_u8(TE_PROTO_VERSION);
  tx_end();
}

void te_protocol_poll(void) {
  int byte = te_port_read_byte(TE_PROTO_POLL_MS);
  while (byte >= 0) {
    te_protocol_rx_byte((uint8_t)byte);
    if (byte == 0) {
      return;
    }
    byte = te_port_read_byte(TE_PROTO_POLL_MS);
  }
}

void te_protocol_serve_forever(void) {
  if (!begun) {
    te_protocol_begin(TE_OK);
  }
  for (;;) {
    te_protocol_poll();
  }
}
