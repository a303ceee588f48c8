/* simavr-uno: an emulated Arduino Uno whose UART is a pseudo-terminal.
 *
 * Loads a bootloader (Optiboot) hex into an ATmega328P at 16 MHz, starts it as after an external
 * reset, and bridges UART0 to a pty so that avrdude can flash the application through the
 * bootloader and the host can then talk to the application on the same pty.
 *
 * usage: simavr-uno BOOTLOADER.hex [FREQUENCY_HZ]
 * prints "simavr-uno: uart on /dev/pts/N" once the pty exists, then runs until killed.
 * The CPU starts only when the first byte arrives on the pty, so the bootloader's
 * one-second window cannot elapse before avrdude has connected; and while the bootloader waits
 * for avrdude with that one-second watchdog, the emulator keeps the watchdog from firing, so a
 * host too busy to send avrdude's next byte within a second cannot make the bootloader give up
 * halfway through a flash (on a real Uno it would; here the wait is the host's, not the board's).
 * Optiboot's 16 ms watchdog after avrdude's last command still resets into the application.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sim_avr.h>
#include <avr_ioport.h>
#include <avr_watchdog.h>
#include <uart_pty.h>

#define BOOT_PC 0x7E00u
#define MCUSR_ADDR 0x54u   /* MCUSR, I/O 0x34 + 0x20 */
#define MCUSR_EXTRF 0x02u
#define WDTCSR_ADDR 0x60u
#define WDTCSR_PRESCALER 0x27u   /* WDP3 (bit 5), WDP2..0 */
#define WDT_ONE_SECOND 0x06u     /* WDP2 | WDP1: Optiboot's WATCHDOG_1S */

static uart_pty_t uart;

static int hex_byte(const char *text) {
  unsigned value;
  return sscanf(text, "%2x", &value) == 1 ? (int)value : -1;
}

/* Intel hex: data (00), end (01), extended segment (02) and linear (04) records are applied;
 * start addresses (03, 05) are ignored; bytes beyond flash are dropped. */
static int load_hex(const char *path, uint8_t *flash, uint32_t flash_size) {
  FILE *file = fopen(path, "r");
  if (!file) {
    perror(path);
    return -1;
  }
  char line[600];
  uint32_t base = 0;
  int loaded = 0;
  while (fgets(line, sizeof line, file)) {
    if (line[0] != ':') continue;
    int count = hex_byte(line + 1), hi = hex_byte(line + 3), lo = hex_byte(line + 5);
    int type = hex_byte(line + 7);
    if (count < 0 || hi < 0 || lo < 0 || type < 0) break;
    uint32_t address = base + (uint32_t)((hi << 8) | lo);
    if (type == 0x01) break;
    if (type == 0x02 || type == 0x04) {
      int a = hex_byte(line + 9), b = hex_byte(line + 11);
      if (a < 0 || b < 0) break;
      base = (uint32_t)((a << 8) | b) << (type == 0x02 ? 4 : 16);
      continue;
    }
    if (type != 0x00) continue;
    for (int i = 0; i < count; i++) {
      int value = hex_byte(line + 9 + 2 * i);
      if (value < 0) break;
      if (address + (uint32_t)i < flash_size) {
        flash[address + (uint32_t)i] = (uint8_t)value;
        loaded++;
      }
    }
  }
  fclose(file);
  return loaded;
}

/* Keep the pty's slave side open and raw: with no reader the master would see EIO between
 * avrdude and the host, and a cooked slave would echo the AVR's output back into its UART. */
static int hold_slave_open(const char *name) {
  int fd = open(name, O_RDWR | O_NOCTTY);
  if (fd < 0) return -1;
  struct termios tio;
  if (tcgetattr(fd, &tio) == 0) {
    cfmakeraw(&tio);
    tcsetattr(fd, TCSANOW, &tio);
  }
  return fd;
}

/* Optiboot waiting for the programmer: running from the boot section with its one-second watchdog. */
static int bootloader_waits(const avr_t *avr) {
  return avr->pc >= BOOT_PC && (avr->data[WDTCSR_ADDR] & WDTCSR_PRESCALER) == WDT_ONE_SECOND;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Hold simulated time to wall-clock time: the bootloader's watchdog window, the UART's byte
 * timing and the host's timeouts then mean what they mean on a real board (and the emulator
 * idles instead of spinning a core). */
static void pace(const avr_t *avr, uint64_t start_ns) {
  uint64_t simulated_ns = (uint64_t)avr->cycle * 1000000000u / avr->frequency;
  uint64_t elapsed_ns = now_ns() - start_ns;
  if (simulated_ns > elapsed_ns + 200000u) {
    struct timespec wait = {0, (long)(simulated_ns - elapsed_ns)};
    nanosleep(&wait, NULL);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s BOOTLOADER.hex [FREQUENCY_HZ]\n", argv[0]);
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  setenv("SIMAVR_UART_XTERM", "0", 1);
  setenv("SIMAVR_UART_TAP", "0", 1);
  uint32_t frequency = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 16000000u;

  avr_t *avr = avr_make_mcu_by_name("atmega328p");
  if (!avr) {
    fprintf(stderr, "simavr-uno: libsimavr has no atmega328p\n");
    return 1;
  }
  avr_init(avr);
  avr->frequency = frequency;
  avr->log = LOG_ERROR;

  memset(avr->flash, 0xff, avr->flashend + 1);
  if (load_hex(argv[1], avr->flash, avr->flashend + 1) <= 0) {
    fprintf(stderr, "simavr-uno: could not load %s\n", argv[1]);
    return 1;
  }
  avr->codeend = avr->flashend;
  avr->reset_pc = BOOT_PC;   /* BOOTRST fuse: resets enter the bootloader */
  avr->pc = BOOT_PC;
  avr->data[MCUSR_ADDR] = MCUSR_EXTRF;

  int stdout_copy = dup(STDOUT_FILENO);
  /* uart_pty prints chatter on stdout; keep ours the only line the host reads. */
  int devnull = open("/dev/null", O_WRONLY);
  dup2(devnull, STDOUT_FILENO);
  uart_pty_init(avr, &uart);
  uart_pty_connect(&uart, '0');
  if (!uart.pty.slavename[0] || hold_slave_open(uart.pty.slavename) < 0) {
    fprintf(stderr, "simavr-uno: could not open a pseudo-terminal\n");
    return 1;
  }
  FILE *out = fdopen(stdout_copy, "w");
  fprintf(out, "simavr-uno: uart on %s\n", uart.pty.slavename);
  fflush(out);

  while (uart.pty.out.read == uart.pty.out.write) usleep(1000);

  uint64_t start_ns = now_ns();
  uint64_t next_pace_cycle = avr->cycle;
  for (;;) {
    int state = avr_run(avr);
    if (avr->cycle >= next_pace_cycle) {
      if (bootloader_waits(avr)) avr_ioctl(avr, AVR_IOCTL_WATCHDOG_RESET, 0);
      pace(avr, start_ns);
      next_pace_cycle = avr->cycle + avr->frequency / 1000u;
    }
    if (state == cpu_Done || state == cpu_Crashed) {
      fprintf(stderr, "simavr-uno: the AVR stopped (state %d)\n", state);
      return 1;
    }
  }
}
