/* Board port for the RP2040 (Raspberry Pi Pico, and rp2040js): UART0 on GP0 (TX) / GP1 (RX) at
 * clk_peri = clk_sys, its receive interrupt filling a ring buffer of TE_RX_BUFFER_BYTES so a
 * protocol chunk is never lost while the core computes, and SysTick on the processor clock extended
 * to 32 bits by its wrap interrupt. te_port_cycles() counts clk_sys cycles (in rp2040js, the
 * emulator's own cycle count); te_port_micros() reports no microsecond timer, so the host reads
 * each inference's latency in cycles. Waiting for a byte sleeps (WFI) until the next interrupt. */
#include <stdint.h>

#include "tinyedge_port.h"

#ifndef TE_UART_BASE
#define TE_UART_BASE 0x40034000u
#endif
#ifndef TE_CPU_HZ
#define TE_CPU_HZ 125000000u
#endif
#ifndef TE_RX_BUFFER_BYTES
#define TE_RX_BUFFER_BYTES 256
#endif

/* Twice the protocol's chunk, so a chunk that arrives while the core computes is kept whole. */
#define RX_RING_BYTES (2u * TE_RX_BUFFER_BYTES)
#define REG(address) (*(volatile uint32_t *)(address))
#define CLEAR_ALIAS 0x3000u

#define RESETS_RESET 0x4000C000u
#define RESETS_RESET_DONE 0x4000C008u
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_UART0 (1u << 22)
#define IO_BANK0_GPIO0_CTRL 0x40014004u
#define IO_BANK0_GPIO1_CTRL 0x4001400Cu
#define GPIO_FUNC_UART 2u

#define UART_DR (TE_UART_BASE + 0x00u)
#define UART_FR (TE_UART_BASE + 0x18u)
#define UART_IBRD (TE_UART_BASE + 0x24u)
#define UART_FBRD (TE_UART_BASE + 0x28u)
#define UART_LCR_H (TE_UART_BASE + 0x2Cu)
#define UART_CR (TE_UART_BASE + 0x30u)
#define UART_IMSC (TE_UART_BASE + 0x38u)
#define UART_ICR (TE_UART_BASE + 0x44u)
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define LCR_H_8N1_FIFO ((3u << 5) | (1u << 4))
#define CR_UARTEN_TXE_RXE ((1u << 0) | (1u << 8) | (1u << 9))
#define IMSC_RX_AND_TIMEOUT ((1u << 4) | (1u << 6))
#define UART0_IRQ 20u

#define NVIC_ISER 0xE000E100u
#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define SCB_ICSR 0xE000ED04u
#define ICSR_PENDSTSET (1u << 26)
#define SYST_ENABLE_TICKINT_CPUCLK 7u
#define SYSTICK_RANGE 0x01000000u   /* a 24-bit down counter */
#define TICKS_PER_WRAP (TE_CPU_HZ / 100u)   /* a SysTick interrupt every 10 ms */

#if TICKS_PER_WRAP > SYSTICK_RANGE
#error "TE_CPU_HZ is too fast for a 10 ms SysTick period"
#endif

static volatile uint32_t systick_wraps;
static volatile uint8_t rx_ring[RX_RING_BYTES];
static volatile uint32_t rx_head, rx_tail;   /* written by the interrupt, read by te_port_read_byte */

void SysTick_Handler(void) { systick_wraps++; }

void UART0_IRQ_Handler(void) {
  while (!(REG(UART_FR) & FR_RXFE)) {
    uint8_t byte = (uint8_t)REG(UART_DR);
    uint32_t next = (rx_head + 1u) % RX_RING_BYTES;
    if (next != rx_tail) {   /* full: the host's protocol never sends that much unanswered */
      rx_ring[rx_head] = byte;
      rx_head = next;
    }
  }
}

static void uart_start(uint32_t baud) {
  uint32_t blocks = RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0;
  REG(RESETS_RESET + CLEAR_ALIAS) = blocks;
  while ((REG(RESETS_RESET_DONE) & blocks) != blocks) {
  }
  /* Baud divisor in 16.6 fixed point: clk_peri / (16 x baud), rounded (datasheet 4.2.7.1). */
  uint32_t divisor = 8u * TE_CPU_HZ / baud;
  REG(UART_IBRD) = divisor >> 7;
  REG(UART_FBRD) = ((divisor & 0x7Fu) + 1u) / 2u;
  REG(UART_LCR_H) = LCR_H_8N1_FIFO;   /* also latches IBRD and FBRD */
  REG(UART_CR) = CR_UARTEN_TXE_RXE;
  REG(UART_IMSC) = IMSC_RX_AND_TIMEOUT;
  REG(IO_BANK0_GPIO0_CTRL) = GPIO_FUNC_UART;
  REG(IO_BANK0_GPIO1_CTRL) = GPIO_FUNC_UART;
  REG(NVIC_ISER) = 1u << UART0_IRQ;
}

void te_port_init(uint32_t baud) {
  uart_start(baud);
  REG(SYST_RVR) = TICKS_PER_WRAP - 1u;
  REG(SYST_CVR) = 0;
  REG(SYST_CSR) = SYST_ENABLE_TICKINT_CPUCLK;
}

static uint64_t systick_ticks(void) {
  uint32_t wraps, count;
  do {
    wraps = systick_wraps;
    count = REG(SYST_CVR);
  } while (wraps != systick_wraps);
  /* A wrap that happened with interrupts masked is still pending: count it. */
  if ((REG(SCB_ICSR) & ICSR_PENDSTSET) && count > TICKS_PER_WRAP / 2u) wraps++;
  return (uint64_t)wraps * TICKS_PER_WRAP + (TICKS_PER_WRAP - 1u - count);
}

uint32_t te_port_cycles(void) { return (uint32_t)systick_ticks(); }

uint32_t te_port_cycle_hz(void) { return TE_CPU_HZ; }

uint32_t te_port_micros(void) { return 0; }

static uint32_t milliseconds(void) { return (uint32_t)(systick_ticks() / (TE_CPU_HZ / 1000u)); }

int te_port_read_byte(uint32_t timeout_ms) {
  uint32_t start = milliseconds();
  for (;;) {
    /* Masked, a byte arriving between the check and WFI still wakes the core. */
    __asm__ volatile("cpsid i" ::: "memory");
    if (rx_tail != rx_head) break;
    if (milliseconds() - start >= timeout_ms) {
      __asm__ volatile("cpsie i" ::: "memory");
      return -1;
    }
    __asm__ volatile("wfi\n\tcpsie i\n\tisb" ::: "memory");
  }
  uint8_t byte = rx_ring[rx_tail];
  rx_tail = (rx_tail + 1u) % RX_RING_BYTES;
  __asm__ volatile("cpsie i" ::: "memory");
  return byte;
}

void te_port_write(const uint8_t *data, size_t len) {
  while (len--) {
    while (REG(UART_FR) & FR_TXFF) {
    }
    REG(UART_DR) = *data++;
  }
}

void te_port_boot_banner(const char *text) {
  while (*text) te_port_write((const uint8_t *)text++, 1);
  te_port_write((const uint8_t *)"\r\n", 2);
}
