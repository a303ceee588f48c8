/* Board port for the Arm MPS2 AN386 (Cortex-M4F) as QEMU emulates it: the CMSDK APB UART0
 * and SysTick extended to 32 bits by its wrap interrupt. Waiting for a byte sleeps (WFI) until
 * the UART's receive interrupt or the next 10 ms tick, so an idle board does not spin a host core. */
#include <stdint.h>

#include "tinyedge_port.h"

#ifndef TE_UART_BASE
#define TE_UART_BASE 0x40004000u
#endif
#ifndef TE_CPU_HZ
#define TE_CPU_HZ 25000000u
#endif

typedef struct {
  volatile uint32_t data;
  volatile uint32_t state;     /* bit 0: TX full, bit 1: RX full */
  volatile uint32_t ctrl;      /* bit 0: TX enable, bit 1: RX enable */
  volatile uint32_t intstatus;
  volatile uint32_t bauddiv;
} cmsdk_uart_t;

typedef struct {
  volatile uint32_t ctrl;      /* bit 0: enable, bit 1: tick interrupt, bit 2: processor clock */
  volatile uint32_t load;
  volatile uint32_t val;
  volatile uint32_t calib;
} systick_t;

#define UART ((cmsdk_uart_t *)TE_UART_BASE)
#define SYSTICK ((systick_t *)0xE000E010u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define SYSTICK_RANGE 0x01000000u  /* a 24-bit down counter */
#define UART_TX_FULL 1u
#define UART_RX_FULL 2u
#define UART_CTRL_TX_RX 3u
#define UART_CTRL_RX_IRQ 8u
#define UART_INT_RX 2u
#define UART0_RX_IRQ 0u
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define TICKS_PER_WRAP (TE_CPU_HZ / 100u)   /* a SysTick interrupt every 10 ms */

#if TICKS_PER_WRAP > SYSTICK_RANGE
#error "TE_CPU_HZ is too fast for a 10 ms SysTick period"
#endif

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

/* Only wakes the core from WFI; the byte stays in the UART until te_port_read_byte takes it. */
void UART0RX_Handler(void) { UART->intstatus = UART_INT_RX; }

void te_port_init(uint32_t baud) {
  UART->bauddiv = TE_CPU_HZ / baud;
  UART->ctrl = UART_CTRL_TX_RX | UART_CTRL_RX_IRQ;
  NVIC_ISER0 = 1u << UART0_RX_IRQ;
  SYSTICK->load = TICKS_PER_WRAP - 1u;
  SYSTICK->val = 0;
  SYSTICK->ctrl = 7u;
}

static uint64_t systick_ticks(void) {
  uint32_t wraps, count;
  do {
    wraps = systick_wraps;
    count = SYSTICK->val;
  } while (wraps != systick_wraps);
  /* A wrap that happened with interrupts masked is still pending: count it. */
  if ((SCB_ICSR & ICSR_PENDSTSET) && count > TICKS_PER_WRAP / 2u) wraps++;
  return (uint64_t)wraps * TICKS_PER_WRAP + (TICKS_PER_WRAP - 1u - count);
}

/* Ticks of the 25 MHz SysTick since boot (under `-icount shift=0`, one tick is 40 instructions). */
uint32_t te_port_cycles(void) { return (uint32_t)systick_ticks(); }

uint32_t te_port_cycle_hz(void) { return TE_CPU_HZ; }

uint32_t te_port_micros(void) { return (uint32_t)(systick_ticks() / (TE_CPU_HZ / 1000000u)); }

int te_port_read_byte(uint32_t timeout_ms) {
  uint32_t start = te_port_micros();
  for (;;) {
    /* Masked, a byte arriving between the check and WFI still wakes the core. */
    __asm__ volatile("cpsid i" ::: "memory");
    if (UART->state & UART_RX_FULL) break;
    if (te_port_micros() - start >= timeout_ms * 1000u) {
      __asm__ volatile("cpsie i" ::: "memory");
      return -1;
    }
    __asm__ volatile("wfi\n\tcpsie i\n\tisb" ::: "memory");
  }
  __asm__ volatile("cpsie i" ::: "memory");
  return (int)(UART->data & 0xFFu);
}

void te_port_write(const uint8_t *data, size_t len) {
  while (len--) {
    while (UART->state & UART_TX_FULL) {
    }
    UART->data = *data++;
  }
}

void te_port_boot_banner(const char *text) {
  while (*text) te_port_write((const uint8_t *)text++, 1);
  te_port_write((const uint8_t *)"\r\n", 2);
}
