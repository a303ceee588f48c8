// The tflm runtime: tinyedge_runtime.h over TFLM's MicroInterpreter.
//
// No heap and no static objects with destructors: the interpreter lives in static storage made
// with placement new, so bare-metal builds need neither malloc nor __cxa_atexit. The same file
// builds against a TFLM tree, ESP-IDF's esp-tflite-micro and the Arduino TFLM libraries.
// Every TFLM micro build defines TF_LITE_STATIC_MEMORY (it changes TfLiteTensor's layout); define it
// here too, so this file agrees with the library even where the build system passes no defines.
#ifndef TF_LITE_STATIC_MEMORY
#define TF_LITE_STATIC_MEMORY
#endif
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <new>

#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "te_tflm_config.h"
#include "te_tflm_model_data.h"
#include "te_tflm_ops.h"
#include "tinyedge_runtime.h"

namespace {

constexpr size_t kArenaAlign = 16;

alignas(kArenaAlign) uint8_t g_arena[TE_TFLM_ARENA_BYTES];
size_t g_arena_len = TE_TFLM_ARENA_BYTES;

alignas(tflite::MicroInterpreter) uint8_t g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter *g_interpreter = nullptr;  // set while an interpreter lives in the storage
bool g_ready = false;                               // AllocateTensors succeeded

void destroy_interpreter() {
  if (g_interpreter != nullptr) {
    g_interpreter->~MicroInterpreter();
    g_interpreter = nullptr;
  }
  g_ready = false;
}

// Below this length MicroAllocator cannot even place its own bookkeeping in the arena, and
// TFLM's MicroInterpreter constructor would dereference a null allocator.
size_t smallest_usable_arena() {
  return tflite::MicroAllocator::GetDefaultTailUsage(false) + kArenaAlign;
}

int create_interpreter() {
  destroy_interpreter();
  const tflite::Model *model = tflite::GetModel(te_tflm_model_data);
  const tflite::MicroOpResolver *resolver = te_tflm_op_resolver();
  if (model->version() != TFLITE_SCHEMA_VERSION || resolver == nullptr) {
    return TE_ERR_INIT;
  }
  if (g_arena_len < smallest_usable_arena()) {
    return TE_ERR_ARENA;
  }
  g_interpreter = new (g_interpreter_storage) tflite::MicroInterpreter(model, *resolver, g_arena, g_arena_len);
  if (g_interpreter->AllocateTensors() != kTfLiteOk) {
    return TE_ERR_ARENA;
  }
  g_ready = true;
  return TE_OK;
}

void zero_inputs() {
  for (size_t i = 0; i < g_interpreter->inputs_size(); ++i) {
    TfLiteTensor *tensor = g_interpreter->input(i);
    memset(tensor->data.raw, 0, tensor->bytes);
  }
}

}  // namespace

extern "C" int te_runtime_init(void) {
  int status = create_interpreter();
  return status == TE_ERR_ARENA && g_arena_len == TE_TFLM_ARENA_BYTES ? TE_ERR_INIT : status;
}

extern "C" uint8_t *te_runtime_input(uint8_t index) {
  if (!g_ready || index >= g_interpreter->inputs_size()) {
    return nullptr;
  }
  return g_interpreter->input(index)->data.uint8;
}

extern "C" const uint8_t *te_runtime_output(uint8_t index) {
  if (!g_ready || index >= g_interpreter->outputs_size()) {
    return nullptr;
  }
  return g_interpreter->output(index)->data.uint8;
}

extern "C" int te_runtime_invoke(void) {
  if (!g_ready) {
    return TE_ERR_INIT;
  }
  return g_interpreter->Invoke() == kTfLiteOk ? TE_OK : TE_ERR_INVOKE;
}

extern "C" uint32_t te_runtime_arena_used(void) {
  return g_ready ? static_cast<uint32_t>(g_interpreter->arena_used_bytes()) : 0u;
}

extern "C" uint32_t te_runtime_arena_size(void) {
  return static_cast<uint32_t>(g_arena_len);
}

extern "C" int te_runtime_reset_state(void) {
  if (!g_ready) {
    return TE_ERR_INIT;
  }
  return g_interpreter->Reset() == kTfLiteOk ? TE_OK : TE_ERR_INVOKE;
}

// bytes == 0 restores the full arena.
extern "C" int te_runtime_set_arena(uint32_t bytes) {
  if (bytes > TE_TFLM_ARENA_BYTES) {
    return TE_ERR_ARENA;
  }
  g_arena_len = bytes == 0 ? TE_TFLM_ARENA_BYTES : bytes;
  int status = create_interpreter();
  if (status != TE_OK) {
    return status;
  }
  zero_inputs();
  if (g_interpreter->Invoke() != kTfLiteOk) {
    g_ready = false;
    return TE_ERR_ARENA;
  }
  return TE_OK;
}

extern "C" const char *te_runtime_name(void) {
  return "tflm";
}

extern "C" const char *te_runtime_version(void) {
  return TE_TFLM_VERSION;
}
