/* Board port for the ATmega328P (Arduino Uno): USART0 with an interrupt-fed receive ring,
 * Timer1 as a free-running cycle counter, and idle sleep while waiting for a byte. F_CPU and TE_RX_BUFFER_BYTES come from the Makefile. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>
#include <util/atomic.h>

#include "tinyedge_port.h"

#ifndef F_CPU
#error "F_CPU must be defined"
#endif
#ifndef TE_RX_BUFFER_BYTES
#define TE_RX_BUFFER_BYTES 64
#endif
#if (TE_RX_BUFFER_BYTES & (TE_RX_BUFFER_BYTES - 1)) != 0 || TE_RX_BUFFER_BYTES > 128
#error "TE_RX_BUFFER_BYTES must be a power of two no larger than 128"
#endif

#define CYCLES_PER_US (F_CPU / 1000000UL)
#if CYCLES_PER_US == 0 || (65536UL % CYCLES_PER_US) != 0
#error "te_port_micros needs F_CPU to be 1, 2, 4, 8 or 16 MHz"
#endif

/* Free-running counters: head - tail is the fill, so all TE_RX_BUFFER_BYTES slots are usable
 * (the protocol sizes its largest frame to the whole buffer). */
static volatile uint8_t rx_ring[TE_RX_BUFFER_BYTES];
static volatile uint8_t rx_head;
static volatile uint8_t rx_tail;
#define RX_MASK (TE_RX_BUFFER_BYTES - 1)
static volatile uint32_t timer1_overflows;

/* A watchdog reset (how a bootloader hands over after flashing) leaves the watchdog running:
 * switch it off before main, as avr-libc advises, or the board resets every few milliseconds. */
void te_port_watchdog_off(void) __attribute__((naked, used, section(".init3")));
void te_port_watchdog_off(void) {
  MCUSR = 0;
  wdt_disable();
}

ISR(USART_RX_vect) {
  uint8_t byte = UDR0;
  if ((uint8_t)(rx_head - rx_tail) < TE_RX_BUFFER_BYTES) {
    rx_ring[rx_head & RX_MASK] = byte;
    rx_head++;
  }
}

ISR(TIMER1_OVF_vect) { timer1_overflows++; }

void te_port_init(uint32_t baud) {
  /* Double speed (U2X0): 115200 baud at 16 MHz is 2.1 % off instead of 3.5 %. */
  uint16_t divisor = (uint16_t)((F_CPU + 4UL * baud) / (8UL * baud) - 1UL);
  UBRR0H = (uint8_t)(divisor >> 8);
  UBRR0L = (uint8_t)divisor;
  UCSR0A = _BV(U2X0);
  UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
  UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);

  TCCR1A = 0;
  TCCR1B = _BV(CS10);   /* no prescaler: one count per CPU cycle */
  TIMSK1 = _BV(TOIE1);
  sei();
}

/* Timer1's count and its overflows, read together (an overflow pending while interrupts are off counts). */
static uint16_t timer1_read(uint32_t *overflows) {
  uint16_t count;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    count = TCNT1;
    *overflows = timer1_overflows;
    if ((TIFR1 & _BV(TOV1)) && count < 0x8000u) (*overflows)++;
  }
  return count;
}

uint32_t te_port_cycles(void) {
  uint32_t overflows;
  uint16_t count = timer1_read(&overflows);
  return (overflows << 16) | count;
}

uint32_t te_port_cycle_hz(void) { return F_CPU; }

uint32_t te_port_micros(void) {
  uint32_t overflows;
  uint16_t count = timer1_read(&overflows);
  return overflows * (65536UL / CYCLES_PER_US) + count / CYCLES_PER_US;
}

int te_port_read_byte(uint32_t timeout_ms) {
  uint32_t start = te_port_micros();
  uint32_t limit = timeout_ms * 1000UL;
  for (;;) {
    cli();
    if (rx_head != rx_tail) break;
    if (te_port_micros() - start >= limit) {
      sei();
      return -1;
    }
    /* Idle until the next byte or Timer1 overflow (every 4 ms); `sei` lets one more instruction
     * run before any interrupt, so a byte cannot slip in between the check and the sleep. */
    sleep_enable();
    sei();
    sleep_cpu();
    sleep_disable();
  }
  uint8_t byte = rx_ring[rx_tail & RX_MASK];
  rx_tail++;
  sei();
  return byte;
}

void te_port_write(const uint8_t *data, size_t len) {
  while (len--) {
    while (!(UCSR0A & _BV(UDRE0))) {
    }
    UDR0 = *data++;
  }
}

void te_port_boot_banner(const char *text) {
  while (*text) te_port_write((const uint8_t *)text++, 1);
  te_port_write((const uint8_t *)"\r\n", 2);
}
