/* The boot sequence shared by every board's firmware: bring up the port, the runtime, print the
 * banner (boot text the host skips), announce the protocol and serve it. A board's main() (generated
 * from templates/common/main.c.j2) is just `int main(void) { te_main(<the profile's baud>u); return 0; }`;
 * ESP-IDF's app_main and the posix port pass their TE_BAUD define, Arduino sketches call te_setup(). */
#include "te_lifecycle.h"
#include "te_protocol.h"
#include "tinyedge_port.h"
#include "tinyedge_runtime.h"

#ifndef TE_BOOT_BANNER
#define TE_BOOT_BANNER "tinyedge: booting"
#endif

void te_setup(uint32_t baud) {
  int status;
  te_port_init(baud);
  te_lifecycle_boot();
  status = te_runtime_init();
  te_port_boot_banner(TE_BOOT_BANNER);
  te_protocol_begin(status);
}

void te_main(uint32_t baud) {
  te_setup(baud);
  te_protocol_serve_forever();
}
