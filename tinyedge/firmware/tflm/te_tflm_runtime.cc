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
#ifdef TE_TFLM_SLOT_MODEL_BYTES
#include "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#endif
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

#include "te_tflm_config.h"
#include "te_tflm_model_data.h"
#include "te_tflm_ops.h"
#include "tinyedge_runtime.h"

namespace {

constexpr size_t kArenaAlign = 16;

alignas(kArenaAlign) uint8_t g_arena[TE_TFLM_ARENA_BYTES];
size_t g_arena_len = TE_TFLM_ARENA_BYTES;

// The model the interpreter runs: the built-in one, or (updatable firmware) the active slot's copy.
const uint8_t *g_model = te_tflm_model_data;

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

#ifdef TE_TFLM_SLOT_MODEL_BYTES
// Where a slot's model is read to, and how much of it the model fills.
alignas(kArenaAlign) uint8_t g_slot_model[TE_TFLM_SLOT_MODEL_BYTES];
size_t g_slot_model_bytes = 0;

// Updatable firmware runs models it was not built for, some too big for its arena. TFLM's kernels
// do not check that their persistent allocations succeeded: in an arena too small they would write
// through a null pointer (on a Cortex-M, over the vector table). So once the arena is full, its
// persistent side hands out the model buffer's unused tail instead, and remembers it did: such a
// model is refused, never run. (Only a model filling its buffer and overflowing the arena by more
// than the rest could still reach a null pointer: the board then resets, and boots the old model.)
class GuardedArena : public tflite::SingleArenaBufferAllocator {
 public:
  GuardedArena(uint8_t *buffer, size_t size, uint8_t *spare, uint8_t *spare_end)
      : SingleArenaBufferAllocator(buffer, size), spare_(spare), spare_end_(spare_end) {}
  uint8_t *AllocatePersistentBuffer(size_t size, size_t alignment) override {
    uint8_t *buffer = SingleArenaBufferAllocator::AllocatePersistentBuffer(size, alignment);
    if (buffer != nullptr) {
      return buffer;
    }
    overflowed = true;
    uintptr_t at = (reinterpret_cast<uintptr_t>(spare_) + alignment - 1) / alignment * alignment;
    if (at + size > reinterpret_cast<uintptr_t>(spare_end_)) {
      return nullptr;
    }
    spare_ = reinterpret_cast<uint8_t *>(at + size);
    return reinterpret_cast<uint8_t *>(at);
  }
  bool overflowed = false;

 private:
  uint8_t *spare_;
  uint8_t *spare_end_;
};

alignas(GuardedArena) uint8_t g_guard_storage[sizeof(GuardedArena)];
GuardedArena *g_guard = nullptr;

tflite::MicroInterpreter *new_interpreter(const tflite::Model *model, const tflite::MicroOpResolver &resolver) {
  size_t used = g_model == g_slot_model ? (g_slot_model_bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign : 0;
  g_guard = new (g_guard_storage) GuardedArena(g_arena, g_arena_len, g_slot_model + used,
                                               g_slot_model + sizeof g_slot_model);
  uint8_t *planner_buffer =
      g_guard->AllocatePersistentBuffer(sizeof(tflite::GreedyMemoryPlanner), alignof(tflite::GreedyMemoryPlanner));
  tflite::MicroMemoryPlanner *planner = g_guard->overflowed ? nullptr : new (planner_buffer) tflite::GreedyMemoryPlanner();
  tflite::MicroAllocator *allocator = planner ? tflite::MicroAllocator::Create(g_guard, planner) : nullptr;
  if (allocator == nullptr || g_guard->overflowed) {
    return nullptr;
  }
  return new (g_interpreter_storage) tflite::MicroInterpreter(model, resolver, allocator);
}

bool arena_overflowed() { return g_guard != nullptr && g_guard->overflowed; }
#else
tflite::MicroInterpreter *new_interpreter(const tflite::Model *model, const tflite::MicroOpResolver &resolver) {
  return new (g_interpreter_storage) tflite::MicroInterpreter(model, resolver, g_arena, g_arena_len);
}

bool arena_overflowed() { return false; }
#endif

// Below this length MicroAllocator cannot even place its own bookkeeping in the arena, and
// TFLM's MicroInterpreter constructor would dereference a null allocator.
size_t smallest_usable_arena() {
  return tflite::MicroAllocator::GetDefaultTailUsage(false) + kArenaAlign;
}

// True when the model carries tinyedge's mark "reset the state before each inference": the metadata
// entry tinyedge_reset_state whose buffer reads each_inference (an exported PyTorch LSTM). Read from the
// model itself, so a model an update brings decides for itself.
bool resets_state_each_inference(const tflite::Model *model) {
  static const char kName[] = "tinyedge_reset_state";
  static const char kValue[] = "each_inference";
  const auto *metadata = model->metadata();
  const auto *buffers = model->buffers();
  if (metadata == nullptr || buffers == nullptr) {
    return false;
  }
  for (const tflite::Metadata *entry : *metadata) {
    if (entry->name() == nullptr || strcmp(entry->name()->c_str(), kName) != 0 || entry->buffer() >= buffers->size()) {
      continue;
    }
    const auto *data = buffers->Get(entry->buffer())->data();
    return data != nullptr && data->size() == sizeof kValue - 1 && memcmp(data->data(), kValue, sizeof kValue - 1) == 0;
  }
  return false;
}

bool g_reset_each_inference = false;

int create_interpreter() {
  destroy_interpreter();
  const tflite::Model *model = tflite::GetModel(g_model);
  g_reset_each_inference = resets_state_each_inference(model);
  const tflite::MicroOpResolver *resolver = te_tflm_op_resolver();
  if (model->version() != TFLITE_SCHEMA_VERSION || resolver == nullptr) {
    return TE_ERR_INIT;
  }
  if (g_arena_len < smallest_usable_arena()) {
    return TE_ERR_ARENA;
  }
  g_interpreter = new_interpreter(model, *resolver);
  if (g_interpreter == nullptr) {
    return TE_ERR_ARENA;
  }
  if (g_interpreter->AllocateTensors() != kTfLiteOk || arena_overflowed()) {
    // Abandoned, not destroyed: its destructor would walk node data a failed allocation left unset.
    // It holds nothing outside its storage and the arena, so nothing leaks.
    g_interpreter = nullptr;
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

#ifdef TE_TFLM_SLOT_MODEL_BYTES
// ---- updatable firmware: a slot holds the .tflite itself (te_slots.c, tinyedge/slots.py) ----
#include "te_lifecycle.h"
#include "tinyedge_model_info.h"

namespace {

// The builtin code of the first op of `model` the resolver lacks (CUSTOM for a custom one); UINT32_MAX: none.
uint32_t missing_op(const tflite::Model *model, const tflite::MicroOpResolver &resolver) {
  const auto *codes = model->operator_codes();
  for (uint32_t i = 0; codes != nullptr && i < codes->size(); ++i) {
    const tflite::OperatorCode *code = codes->Get(i);
    tflite::BuiltinOperator op = tflite::GetBuiltinCode(code);
    bool found = op == tflite::BuiltinOperator_CUSTOM
                     ? code->custom_code() != nullptr && resolver.FindOp(code->custom_code()->c_str()) != nullptr
                     : resolver.FindOp(op) != nullptr;
    if (!found) {
      return static_cast<uint32_t>(op);
    }
  }
  return UINT32_MAX;
}

bool same_io_sizes() {
  if (g_interpreter->inputs_size() != te_model_info.num_inputs ||
      g_interpreter->outputs_size() != te_model_info.num_outputs) {
    return false;
  }
  for (size_t i = 0; i < g_interpreter->inputs_size(); ++i) {
    if (g_interpreter->input(i)->bytes != te_model_info.inputs[i].bytes) return false;
  }
  for (size_t i = 0; i < g_interpreter->outputs_size(); ++i) {
    if (g_interpreter->output(i)->bytes != te_model_info.outputs[i].bytes) return false;
  }
  return true;
}

// Rebuild the interpreter on the model te_slots.c just read into g_slot_model. A model whose ops
// this firmware's resolver lacks, that does not fit the arena or whose I/O differs is refused.
uint8_t reload_slot_model(uint32_t bytes, uint32_t *detail) {
  g_model = g_slot_model;
  g_slot_model_bytes = bytes;
  const tflite::Model *model = tflite::GetModel(g_slot_model);
  if (bytes < 8u || model->version() != TFLITE_SCHEMA_VERSION || model->subgraphs() == nullptr) {
    return TE_LC_BAD_IMAGE;
  }
  uint32_t op = missing_op(model, *te_tflm_op_resolver());
  uint8_t status = TE_OK;
  g_arena_len = TE_TFLM_ARENA_BYTES;
  if (op != UINT32_MAX) {
    *detail = op;
    status = TE_LC_MISSING_OP;
  } else if (create_interpreter() != TE_OK) {
    *detail = TE_TFLM_ARENA_BYTES;
    status = TE_LC_ARENA;
  } else if (!same_io_sizes()) {
    status = TE_LC_BAD_IMAGE;
  }
  if (status != TE_OK) {   // te_slots.c loads a good model next; until then, the built-in one
    destroy_interpreter();
    g_model = te_tflm_model_data;
  }
  return status;
}

te_slot_array_t g_built_in;
te_slot_layout_t g_layout;

}  // namespace

// Filled on first use, not by a static initializer: bare-metal startups need not run constructors.
extern "C" const te_slot_layout_t *te_model_slot_layout(void) {
  g_built_in.data = const_cast<unsigned char *>(te_tflm_model_data);
  g_built_in.bytes = te_tflm_model_data_len;
  memset(&g_layout, 0, sizeof g_layout);   // graph: none, TFLM is not compiled for one
  g_layout.arrays = &g_built_in;
  g_layout.array_count = 1;
  g_layout.kind = TE_SLOT_KIND_TFLM;
  g_layout.buffer = g_slot_model;
  g_layout.capacity = TE_TFLM_SLOT_MODEL_BYTES;
  g_layout.reload = reload_slot_model;
  g_layout.release = destroy_interpreter;
  return &g_layout;
}
#endif

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
  // A marked model starts every inference from its first state: Reset() is TFLM's ResetVariableTensors
  // plus each op's own state, as RESET_STATE does.
  if (g_reset_each_inference && g_interpreter->Reset() != kTfLiteOk) {
    return TE_ERR_INVOKE;
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
