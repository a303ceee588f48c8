/* What each board port provides to the protocol: a byte stream and a clock.
 * One implementation per board family lives in firmware/ports/<name>/. */
#ifndef TINYEDGE_PORT_H
#define TINYEDGE_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bring up the UART (or pseudo-terminal) at the given baud rate and the timer. */
void te_port_init(uint32_t baud);

/* Next received byte, or -1 when none arrived within timeout_ms. */
int te_port_read_byte(uint32_t timeout_ms);

/* Send bytes; returns once they are queued or sent. */
void te_port_write(const uint8_t *data, size_t len);

/* A free-running cycle (or timer tick) counter, and microseconds since boot (0 if the board has no timer).
 * te_port_cycle_hz() says what one count of te_port_cycles() is worth. */
uint32_t te_port_cycles(void);
uint32_t te_port_cycle_hz(void);
uint32_t te_port_micros(void);

/* Optional: the most stack, in bytes, used since reset (a painted-stack high-water mark), or 0 when
 * the port cannot tell. Ports without it get a weak default returning 0 (te_protocol.c). */
uint32_t te_port_stack_used(void);

/* Human-readable boot text, printed before the protocol starts (the host skips it). */
void te_port_boot_banner(const char *text);

#ifdef __cplusplus
}
#endif

#endif
