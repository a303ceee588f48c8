/* What a runtime (tflm or aot) provides to the protocol. The protocol writes request bytes
 * straight into the model's input tensors and reads the outputs straight from the output
 * tensors, so a 2 KiB board holds no second copy. */
#ifndef TINYEDGE_RUNTIME_H
#define TINYEDGE_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum te_status {
  TE_OK = 0,
  TE_ERR_INIT = 1,        /* runtime could not be set up (e.g. AllocateTensors failed) */
  TE_ERR_INVOKE = 2,      /* Invoke failed */
  TE_ERR_UNSUPPORTED = 3, /* request not supported by this runtime */
  TE_ERR_ARENA = 4        /* the requested arena length is too small */
};

/* Set up the model; returns a te_status. Called once at boot and after te_runtime_set_arena. */
int te_runtime_init(void);

/* Pointers into the runtime's memory for input i / output i (sizes come from model_info). */
uint8_t *te_runtime_input(uint8_t index);
const uint8_t *te_runtime_output(uint8_t index);

/* Run one inference on what is in the input tensors. */
int te_runtime_invoke(void);

/* Bytes of the tensor arena in use, and its capacity. */
uint32_t te_runtime_arena_used(void);
uint32_t te_runtime_arena_size(void);

/* Re-create the runtime over the first `bytes` of its arena and run AllocateTensors and one Invoke
 * on zero input (TFLM's --fit-arena). TE_ERR_UNSUPPORTED where the arena is planned statically. */
int te_runtime_set_arena(uint32_t bytes);

/* Put the model's state (variable tensors: SVDF, LSTM) back as it is at boot, so a host reference
 * that starts fresh sees the same state. A no-op returning TE_OK for stateless models. */
int te_runtime_reset_state(void);

/* "tflm" or "aot", and the runtime's version string. */
const char *te_runtime_name(void);
const char *te_runtime_version(void);

#ifdef __cplusplus
}
#endif

#endif
