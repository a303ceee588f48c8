/* The host board's port: the firmware is a native program serving the protocol on a
 * pseudo-terminal (or on stdin/stdout with --stdio). Test knobs come from the environment:
 *
 *   TE_POSIX_RX_FIFO=64          emulate a UART receive FIFO of that many bytes: bytes arriving while
 *                                it is full are dropped (an overrun), and reported on stderr
 *   TE_POSIX_RESET_AT_RX=N       simulate a device reset when the Nth byte (1-based) arrives
 *   TE_POSIX_FLIP_RX=N,M,...     flip a bit in the Nth, Mth... received byte (1-based)
 *   TE_POSIX_FLIP_TX=N,M,...     flip a bit in the Nth, Mth... byte sent by the protocol (1-based)
 *   TE_POSIX_NOISE=K[,SEED]      flip a random bit in about one of every K bytes, both directions
 *   TE_POSIX_BOOT_DELAY_MS=N     take that long to boot; bytes received meanwhile are lost
 *   TE_POSIX_BOOT_NOISE=1        print binary garbage and a bootloader-like text before the banner
 *   TE_POSIX_STACK_SCAN_MS=N     te_port_stack_used() takes that long (a painted-stack scan on a slow
 *                                emulator) and reports a stack in use
 *
 * SIGUSR1 also simulates a reset: the firmware drops its state and pending input, prints its boot
 * banner again and starts over, as a board does after its reset button.
 */
#ifndef TE_PORT_POSIX_H
#define TE_PORT_POSIX_H

#include <setjmp.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parse the command line (--stdio, --help) and the TE_POSIX_* environment. Returns -1 to go on,
 * or the status to exit with. */
int te_posix_configure(int argc, char **argv);

/* Where a simulated reset jumps to: main() calls sigsetjmp on it before te_main(). */
extern sigjmp_buf te_posix_reset_point;

#ifdef __cplusplus
}
#endif

#endif
