/* The host board's firmware entry point: the shared boot sequence, restarted on a simulated reset. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdint.h>

#include "te_port_posix.h"
#include "te_protocol.h"

#ifndef TE_BAUD
#define TE_BAUD 115200
#endif

int main(int argc, char **argv) {
  int status = te_posix_configure(argc, argv);
  if (status >= 0) {
    return status;
  }
  (void)sigsetjmp(te_posix_reset_point, 1);
  te_main(TE_BAUD);
  return 0;
}
