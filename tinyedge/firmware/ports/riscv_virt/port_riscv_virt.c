/* Board port for QEMU's RISC-V virt machine (an RV32IMAC hart in machine mode): the NS16550A UART0
 * and the CLINT's 64-bit mtime (10 MHz, the device tree's timebase-frequency). Waiting for a byte
 * sleeps (WFI) until the UART's receive interrupt, routed through the PLIC, or a timer compare at most
 * 10 ms away, so an idle board does not spin a host core. Interrupts stay globally disabled
 * (mstatus.MIE = 0): WFI wakes on an interrupt pending and enabled in mie without taking it. */
#include <stdint.h>

#include "tinyedge_port.h"

#ifndef TE_UART_BASE
#define TE_UART_BASE 0x10000000u
#endif
/* The rate te_port_cycles() counts at: mtime's. */
#ifndef TE_CPU_HZ
#define TE_CPU_HZ 10000000u
#endif
#ifndef TE_UART_CLOCK_HZ
#define TE_UART_CLOCK_HZ 3686400u   /* virt's ns16550a clock-frequency */
#endif

#define UART ((volatile uint8_t *)TE_UART_BASE)
#define UART_RBR 0u   /* DLAB = 0 */
#define UART_THR 0u
#define UART_DLL 0u   /* DLAB = 1 */
#define UART_IER 1u
#define UART_DLM 1u
#define UART_FCR 2u
#define UART_LCR 3u
#define UART_LSR 5u
#define IER_RX_AVAILABLE 0x01u
#define FCR_ENABLE_AND_CLEAR 0x07u
#define LCR_8N1 0x03u
#define LCR_DLAB 0x80u
#define LSR_DR 0x01u
#define LSR_THRE 0x20u

#define CLINT_BASE 0x02000000u
#define MTIMECMP_LO (*(volatile uint32_t *)(CLINT_BASE + 0x4000u))
#define MTIMECMP_HI (*(volatile uint32_t *)(CLINT_BASE + 0x4004u))
#define MTIME_LO (*(volatile uint32_t *)(CLINT_BASE + 0xBFF8u))
#define MTIME_HI (*(volatile uint32_t *)(CLINT_BASE + 0xBFFCu))

/* PLIC context 0 is hart 0's machine mode; virt wires UART0 to source 10. */
#define PLIC_BASE 0x0C000000u
#define UART0_IRQ 10u
#define PLIC_PRIORITY(source) (*(volatile uint32_t *)(PLIC_BASE + 4u * (source)))
#define PLIC_ENABLE (*(volatile uint32_t *)(PLIC_BASE + 0x2000u))
#define PLIC_THRESHOLD (*(volatile uint32_t *)(PLIC_BASE + 0x200000u))
#define PLIC_CLAIM (*(volatile uint32_t *)(PLIC_BASE + 0x200004u))

#define MIE_MTIE (1u << 7)
#define MIE_MEIE (1u << 11)
#define TICKS_PER_US (TE_CPU_HZ / 1000000u)
#define TICKS_PER_WAKE (TE_CPU_HZ / 100u)   /* sleep at most 10 ms at a time */

static uint64_t mtime(void) {
  uint32_t hi, lo;
  do {
    hi = MTIME_HI;
    lo = MTIME_LO;
  } while (hi != MTIME_HI);
  return ((uint64_t)hi << 32) | lo;
}

/* Written high word first so no intermediate value lies in the past. */
static void set_mtimecmp(uint64_t when) {
  MTIMECMP_HI = 0xFFFFFFFFu;
  MTIMECMP_LO = (uint32_t)when;
  MTIMECMP_HI = (uint32_t)(when >> 32);
}

void te_port_init(uint32_t baud) {
  uint32_t divisor = TE_UART_CLOCK_HZ / (16u * baud);
  UART[UART_LCR] = LCR_DLAB;
  UART[UART_DLL] = (uint8_t)divisor;
  UART[UART_DLM] = (uint8_t)(divisor >> 8);
  UART[UART_LCR] = LCR_8N1;
  UART[UART_FCR] = FCR_ENABLE_AND_CLEAR;
  UART[UART_IER] = IER_RX_AVAILABLE;
  PLIC_PRIORITY(UART0_IRQ) = 1u;
  PLIC_ENABLE = 1u << UART0_IRQ;
  PLIC_THRESHOLD = 0u;
  set_mtimecmp(UINT64_MAX);
  /* -march=rv32imac keeps Debian's rv32imac/ilp32 multilib; the CSR instructions are Zicsr's. */
  __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrs mie, %0\n\t.option pop" : : "r"(MIE_MTIE | MIE_MEIE));
}

/* mtime ticks since boot (under `-icount shift=0` one tick is 100 instructions). */
uint32_t te_port_cycles(void) { return (uint32_t)mtime(); }

uint32_t te_port_cycle_hz(void) { return TE_CPU_HZ; }

uint32_t te_port_micros(void) { return (uint32_t)(mtime() / TICKS_PER_US); }

/* Whatever woke the hart: a UART interrupt is claimed and completed so the PLIC can raise the next. */
static void acknowledge_wake(void) {
  uint32_t source = PLIC_CLAIM;
  if (source) PLIC_CLAIM = source;
}

int te_port_read_byte(uint32_t timeout_ms) {
  uint64_t deadline = mtime() + (uint64_t)timeout_ms * 1000u * TICKS_PER_US;
  for (;;) {
    if (UART[UART_LSR] & LSR_DR) return (int)UART[UART_RBR];
    uint64_t now = mtime();
    if (now >= deadline) return -1;
    set_mtimecmp(deadline - now > TICKS_PER_WAKE ? now + TICKS_PER_WAKE : deadline);
    /* A byte arriving after the check above is pending in mip already: WFI returns at once. */
    __asm__ volatile("wfi" ::: "memory");
    acknowledge_wake();
  }
}

void te_port_write(const uint8_t *data, size_t len) {
  while (len--) {
    while (!(UART[UART_LSR] & LSR_THRE)) {
    }
    UART[UART_THR] = *data++;
  }
}

void te_port_boot_banner(const char *text) {
  while (*text) te_port_write((const uint8_t *)text++, 1);
  te_port_write((const uint8_t *)"\r\n", 2);
}
