/* libFuzzer target for the device's frame parser and request handlers:
 *   clang -fsanitize=fuzzer,address,undefined -I firmware/common -I firmware/protocol \
 *         firmware/protocol/fuzz/fuzz_frames.c firmware/protocol/te_protocol.c -o fuzz_frames
 *
 * The first input byte picks a mode. Odd: the rest is raw line bytes fed to the parser as they are.
 * Even: the rest is a list of [length, frame content...] records, each sent as a well-formed frame
 * (rCOBS + a correct CRC), so the fuzzer reaches every request handler with any body.
 *
 * Besides the sanitizers, every byte the device sends is checked: each reply must be a valid frame
 * (rCOBS, CRC) of a reply or NAK type, and every non-empty frame the device received must get
 * exactly one reply (errors come back as codes, never as silence). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "te_protocol.h"
#include "tinyedge_model_info.h"
#include "tinyedge_port.h"
#include "tinyedge_runtime.h"

/* ---- a tiny model: inputs of 5 and 70 bytes, one output of 3 bytes ---- */

static const te_tensor_info_t fuzz_inputs[2] = {
    {TE_INT8, 2, {1, 5}, 5, 0.5f, 1},
    {TE_INT8, 3, {1, 7, 10}, 70, 0.25f, -2},
};
static const te_tensor_info_t fuzz_outputs[1] = {{TE_INT8, 2, {1, 3}, 3, 1.0f, 0}};
const te_model_info_t te_model_info = {"fuzz", {0}, 1000, 2, 1, fuzz_inputs, fuzz_outputs};

static uint8_t tensors[5 + 70 + 3];
static uint8_t ready;
static uint32_t arena = 1000;

int te_runtime_init(void) {
  memset(tensors, 0, sizeof tensors);
  ready = 1;
  arena = 1000;
  return TE_OK;
}
uint8_t *te_runtime_input(uint8_t index) {
  return !ready ? NULL : index == 0 ? tensors : index == 1 ? tensors + 5 : NULL;
}
const uint8_t *te_runtime_output(uint8_t index) { return ready && index == 0 ? tensors + 75 : NULL; }
int te_runtime_invoke(void) {
  if (!ready) {
    return TE_ERR_INIT;
  }
  tensors[75] = (uint8_t)(tensors[0] + tensors[74]);
  tensors[76] = tensors[4];
  tensors[77] = 0;
  return tensors[1] == 0xEE ? TE_ERR_INVOKE : TE_OK;
}
int te_runtime_reset_state(void) { return ready ? TE_OK : TE_ERR_INIT; }
uint32_t te_runtime_arena_used(void) { return ready ? 78u : 0u; }
uint32_t te_runtime_arena_size(void) { return arena; }
int te_runtime_set_arena(uint32_t bytes) {
  if (bytes == 12345u) {
    return TE_ERR_UNSUPPORTED;
  }
  arena = bytes;
  ready = bytes >= 78u;
  return ready ? TE_OK : TE_ERR_ARENA;
}
const char *te_runtime_name(void) { return "fuzz"; }
const char *te_runtime_version(void) { return "0"; }

/* ---- the port: replies are checked as they stream out ---- */

static uint8_t reply[4096];
static size_t reply_len;
static size_t replies;

static uint32_t crc32(const uint8_t *data, size_t len) {
  uint32_t crc = 0xFFFFFFFFUL;
  size_t i;
  uint8_t bit;
  for (i = 0; i < len; i++) {
    crc ^= data[i];
    for (bit = 0; bit < 8; bit++) {
      crc = (crc >> 1) ^ (0xEDB88320UL & (0UL - (crc & 1UL)));
    }
  }
  return ~crc;
}

/* Decode rCOBS (from the end) into out; returns the decoded length or (size_t)-1. */
static size_t rcobs_decode(const uint8_t *in, size_t len, uint8_t *out) {
  uint8_t tmp[sizeof reply];
  size_t end = len;
  size_t n = 0;
  int last = 1;
  while (end > 0) {
    uint8_t code = in[--end];
    if (code == 0) {
      return (size_t)-1;
    }
    if (!last && code != 0xFF) {
      tmp[n++] = 0;
    }
    last = 0;
    if ((size_t)(code - 1) > end) {
      return (size_t)-1;
    }
    while (--code) {
      tmp[n++] = in[--end];
    }
  }
  for (end = 0; end < n; end++) {
    out[end] = tmp[n - 1 - end];
  }
  return n;
}

static void check_reply(void) {
  uint8_t frame[sizeof reply];
  size_t n = rcobs_decode(reply, reply_len, frame);
  uint32_t crc;
  if (n == (size_t)-1 || n < 10) {
    abort(); /* every reply has type, request id, status and a CRC */
  }
  crc = (uint32_t)frame[n - 4] | ((uint32_t)frame[n - 3] << 8) | ((uint32_t)frame[n - 2] << 16) |
        ((uint32_t)frame[n - 1] << 24);
  if (crc != crc32(frame, n - 4) || (frame[0] & 0x80u) == 0) {
    abort();
  }
  replies++;
}

void te_port_init(uint32_t baud) { (void)baud; }
int te_port_read_byte(uint32_t timeout_ms) {
  (void)timeout_ms;
  return -1;
}
void te_port_write(const uint8_t *data, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    if (data[i] == 0) {
      if (reply_len) {
        check_reply();
      }
      reply_len = 0;
    } else {
      if (reply_len == sizeof reply) {
        abort(); /* no reply is this long */
      }
      reply[reply_len++] = data[i];
    }
  }
}
uint32_t te_port_cycles(void) { return 7; }
uint32_t te_port_cycle_hz(void) { return 1000; }
uint32_t te_port_micros(void) { return 0; }
void te_port_boot_banner(const char *text) { (void)text; }

/* ---- the target ---- */

static void send_frame(const uint8_t *content, size_t len) {
  uint8_t raw[300];
  uint32_t crc;
  size_t i;
  uint8_t run = 0;
  memcpy(raw, content, len);
  crc = crc32(raw, len);
  for (i = 0; i < 4; i++) {
    raw[len + i] = (uint8_t)(crc >> (8 * i));
  }
  for (i = 0; i < len + 4; i++) {
    if (raw[i] == 0) {
      te_protocol_rx_byte((uint8_t)(run + 1));
      run = 0;
    } else {
      te_protocol_rx_byte(raw[i]);
      if (++run == 254) {
        te_protocol_rx_byte(0xFF);
        run = 0;
      }
    }
  }
  te_protocol_rx_byte((uint8_t)(run + 1));
  te_protocol_rx_byte(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t expected = 1; /* the BOOT frame */
  size_t i;
  reply_len = 0;
  replies = 0;
  te_protocol_begin(te_runtime_init());
  if (size == 0) {
    return 0;
  }
  if (data[0] & 1u) {
    int in_frame = 0;
    for (i = 1; i < size; i++) {
      te_protocol_rx_byte(data[i]);
      if (data[i] != 0) {
        in_frame = 1;
      } else if (in_frame) {
        expected++;
        in_frame = 0;
      }
    }
    te_protocol_rx_byte(0);
    expected += (size_t)in_frame;
  } else {
    i = 1;
    while (i < size) {
      size_t len = data[i++];
      if (len > size - i) {
        len = size - i;
      }
      send_frame(data + i, len);
      expected++;
      i += len;
    }
  }
  if (replies != expected || reply_len != 0) {
    abort(); /* a request went unanswered, or a reply was left unterminated */
  }
  return 0;
}
