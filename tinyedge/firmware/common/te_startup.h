/* What the bare-metal ports' reset code shares, for linker scripts that define __data_load,
 * __data_start/__data_end, __bss_start/__bss_end (the end of static RAM: free RAM starts there),
 * __stack_top and the init arrays: a painted stack's high-water mark, and the C runtime's set-up. */
#ifndef TE_STARTUP_H
#define TE_STARTUP_H

#include <stdint.h>
#include <string.h>

/* Not a byte repeated, so no memset or zeroed buffer can look like unused stack. */
#define TE_STACK_PAINT 0x5AC3E10Fu

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern void (*__preinit_array_start[])(void);
extern void (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

/* Everything between the end of .bss (the empty heap) and the stack pointer `sp`: the stack may
 * overflow its reservation into free RAM, and the high-water mark should still see how far. */
static inline __attribute__((always_inline)) void te_paint_stack_below(uint32_t *sp) {
  for (volatile uint32_t *word = &__bss_end; word < sp; word++) *word = TE_STACK_PAINT;
}

#ifdef __arm__
/* Paint below the stack pointer of the caller, the reset handler (always inlined: no frame of its own). */
static inline __attribute__((always_inline)) void te_paint_free_stack(void) {
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  te_paint_stack_below(sp);
}
#endif

/* Bytes of stack ever used since reset: from the top down to the lowest word no longer painted. */
static inline uint32_t te_painted_stack_used(void) {
  const volatile uint32_t *word = &__bss_end;
  while (word < &__stack_top && *word == TE_STACK_PAINT) word++;
  return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)word);
}

/* .data copied from its load image, .bss zeroed, static constructors run: then C (and C++) may start. */
static inline __attribute__((always_inline)) void te_start_c_runtime(void) {
  memcpy(&__data_start, &__data_load, (size_t)((char *)&__data_end - (char *)&__data_start));
  memset(&__bss_start, 0, (size_t)((char *)&__bss_end - (char *)&__bss_start));
  for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; f++) (*f)();
  for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
}

/* For ports that link C++ (TFLM): objects register destructors that never run on a board that never
 * exits. Expanded once, in the port's startup file. */
#define TE_CXX_RUNTIME_STUBS                                            \
  void *__dso_handle = 0;                                               \
  int __cxa_atexit(void (*destructor)(void *), void *object, void *dso) { \
    (void)destructor;                                                   \
    (void)object;                                                       \
    (void)dso;                                                          \
    return 0;                                                           \
  }

#endif
