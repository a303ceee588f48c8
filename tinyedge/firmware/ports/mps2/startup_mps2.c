/* Reset and vector table for the Cortex-M4F of MPS2 AN386, linked with -nostartfiles:
 * paint the free RAM below the stack, enable the FPU, copy .data, zero .bss, run static
 * constructors, call main. te_port_stack_used() measures the stack's high-water mark from the paint. */
#include <stdint.h>

#include "te_startup.h"
#include "tinyedge_port.h"

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);
void UART0RX_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

TE_CXX_RUNTIME_STUBS

__attribute__((section(".isr_vector"), used))
void (*const te_vector_table[16 + 32])(void) = {
    (void (*)(void))&__stack_top,
    Reset_Handler,
    Default_Handler,   /* NMI */
    Fault_Handler,     /* HardFault */
    Fault_Handler,     /* MemManage */
    Fault_Handler,     /* BusFault */
    Fault_Handler,     /* UsageFault */
    0, 0, 0, 0,
    Default_Handler,   /* SVCall */
    Default_Handler,   /* DebugMonitor */
    0,
    Default_Handler,   /* PendSV */
    SysTick_Handler,
    UART0RX_Handler,   /* IRQ 0: UART0 receive */
};

static void semihosting_exit(int status) {
  /* SYS_EXIT_EXTENDED with ADP_Stopped_ApplicationExit and the status. */
  static uint32_t block[2];
  block[0] = 0x20026u;
  block[1] = (uint32_t)status;
  register uint32_t r0 __asm__("r0") = 0x20u;
  register uint32_t *r1 __asm__("r1") = block;
  __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}

uint32_t te_port_stack_used(void) { return te_painted_stack_used(); }

__attribute__((noreturn)) void Reset_Handler(void) {
  te_paint_free_stack();
  SCB_CPACR |= 0xFu << 20;   /* CP10 and CP11 full access: before any float instruction */
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  te_start_c_runtime();
  semihosting_exit(main());
  for (;;) {
  }
}

static void write_text(const char *text) {
  volatile uint32_t *uart = (volatile uint32_t *)0x40004000u;
  uart[2] |= 1u;
  while (*text) {
    while (uart[1] & 1u) {
    }
    uart[0] = (uint8_t)*text++;
  }
}

void Fault_Handler(void) {
  write_text("\r\ntinyedge: hard fault\r\n");
  semihosting_exit(70);
  for (;;) {
  }
}

void Default_Handler(void) {
  write_text("\r\ntinyedge: unexpected interrupt\r\n");
  for (;;) {
  }
}
