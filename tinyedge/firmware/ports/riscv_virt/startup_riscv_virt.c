/* Reset and trap handling for QEMU's RISC-V virt machine (one hart, machine mode), linked with
 * -nostartfiles: set gp, sp, tp (picolibc's errno is thread-local) and the trap vector, paint the free
 * RAM below the stack, copy .data, zero .bss, run static constructors, call main. An exit or a trap
 * stops QEMU through virt's SiFive test device. te_port_stack_used() measures the stack's high-water mark. */
#include <stdint.h>

#include "te_startup.h"
#include "tinyedge_port.h"

/* virt's "sifive,test" device: 0x5555 stops QEMU with status 0, (code << 16) | 0x3333 with `code`. */
#define TEST_DEVICE (*(volatile uint32_t *)0x00100000u)
#define TEST_PASS 0x5555u
#define TEST_FAIL 0x3333u
#define TRAP_EXIT_STATUS 70u

#ifndef TE_UART_BASE
#define TE_UART_BASE 0x10000000u
#endif
#define UART_THR 0u
#define UART_LSR 5u
#define LSR_THRE 0x20u


int main(void);
void te_reset(void);
void te_trap(void);

/* The entry QEMU jumps to: registers the C code relies on, then C. gp is loaded without relaxation
 * (relaxed, `la gp` would turn into an access through gp itself); -march=rv32imac keeps Debian's
 * rv32imac/ilp32 multilib, so the CSR instructions name their extension, Zicsr. */
__asm__(
    ".section .text.start, \"ax\", @progbits\n"
    ".globl _start\n"
    "_start:\n"
    ".option push\n"
    ".option norelax\n"
    "  la gp, __global_pointer$\n"
    ".option pop\n"
    "  la sp, __stack_top\n"
    "  la tp, __tls_base\n"
    "  la t0, te_trap\n"
    ".option push\n"
    ".option arch, +zicsr\n"
    "  csrw mtvec, t0\n"
    ".option pop\n"
    "  j te_reset\n"
    ".text\n");

__attribute__((noreturn)) static void stop_qemu(uint32_t status) {
  TEST_DEVICE = status == 0 ? TEST_PASS : (status << 16) | TEST_FAIL;
  for (;;) {
  }
}

static inline __attribute__((always_inline)) void paint_stack(void) {
  uint32_t *sp;
  __asm__ volatile("mv %0, sp" : "=r"(sp));
  te_paint_stack_below(sp);
}

uint32_t te_port_stack_used(void) { return te_painted_stack_used(); }

__attribute__((noreturn)) void te_reset(void) {
  paint_stack();
  te_start_c_runtime();
  stop_qemu((uint32_t)main());
}

static void write_text(const char *text) {
  volatile uint8_t *uart = (volatile uint8_t *)TE_UART_BASE;
  while (*text) {
    while (!(uart[UART_LSR] & LSR_THRE)) {
    }
    uart[UART_THR] = (uint8_t)*text++;
  }
}

static void write_hex(uint32_t value) {
  char text[11] = "0x";
  for (int i = 0; i < 8; i++) text[2 + i] = "0123456789abcdef"[(value >> (28 - 4 * i)) & 0xFu];
  text[10] = '\0';
  write_text(text);
}

/* Interrupts stay disabled (the port only wakes from WFI), so any trap is an exception: a fault. */
__attribute__((aligned(4), noreturn)) void te_trap(void) {
  uint32_t cause, pc, value;
  __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, mcause\n\tcsrr %1, mepc\n\tcsrr %2, mtval\n\t.option pop"
                   : "=r"(cause), "=r"(pc), "=r"(value));
  write_text("\r\ntinyedge: trap, mcause ");
  write_hex(cause);
  write_text(" mepc ");
  write_hex(pc);
  write_text(" mtval ");
  write_hex(value);
  write_text("\r\n");
  stop_qemu(TRAP_EXIT_STATUS);
}
