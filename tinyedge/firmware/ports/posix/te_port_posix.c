/* Host board port: a pseudo-terminal (or stdin/stdout) as the UART, CLOCK_MONOTONIC as the timer,
 * and the fault injection described in te_port_posix.h. */
#define _GNU_SOURCE
#include "te_port_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tinyedge_port.h"

#define MAX_FLIPS 64
#define FIFO_CAPACITY 65536u

typedef struct {
  unsigned long long at[MAX_FLIPS];
  unsigned count;
} byte_list_t;

sigjmp_buf te_posix_reset_point;

static int in_fd = -1;
static int out_fd = -1;
static int slave_fd = -1;
static int use_stdio;

static uint8_t fifo[FIFO_CAPACITY];
static uint32_t fifo_head;
static uint32_t fifo_count;
static uint32_t fifo_limit = FIFO_CAPACITY;
static unsigned long long overrun_bytes;

static unsigned long long rx_count;
static unsigned long long tx_count;
static unsigned long long reset_at_rx;
static byte_list_t flip_rx;
static byte_list_t flip_tx;
static unsigned long noise_every;
static unsigned long long noise_state = 0x9E3779B97F4A7C15ULL;
static unsigned long boot_delay_ms;
static unsigned long stack_scan_ms;
static int boot_noise;

static volatile sig_atomic_t reset_requested;
static struct timespec boot_time;

static void on_reset_signal(int signo) {
  (void)signo;
  reset_requested = 1;
}

static void check_reset(void) {
  if (reset_requested) {
    reset_requested = 0;
    fprintf(stderr, "tinyedge-posix: simulated reset\n");
    siglongjmp(te_posix_reset_point, 1);
  }
}

static unsigned long long env_number(const char *name, unsigned long long fallback) {
  const char *value = getenv(name);
  return (value && *value) ? strtoull(value, NULL, 0) : fallback;
}

static void parse_list(const char *name, byte_list_t *list) {
  const char *p = getenv(name);
  list->count = 0;
  while (p && *p && list->count < MAX_FLIPS) {
    char *end;
    unsigned long long n = strtoull(p, &end, 0);
    if (end == p) {
      break;
    }
    list->at[list->count++] = n;
    p = (*end == ',') ? end + 1 : end;
  }
}

static int in_list(const byte_list_t *list, unsigned long long n) {
  unsigned i;
  for (i = 0; i < list->count; i++) {
    if (list->at[i] == n) {
      return 1;
    }
  }
  return 0;
}

static uint8_t random_byte(void) {
  noise_state ^= noise_state << 13;
  noise_state ^= noise_state >> 7;
  noise_state ^= noise_state << 17;
  return (uint8_t)(noise_state >> 24);
}

static int noise_hit(void) {
  if (noise_every == 0) {
    return 0;
  }
  return (random_byte() | ((unsigned long)random_byte() << 8) | ((unsigned long)random_byte() << 16)) %
             noise_every == 0;
}

static uint8_t maybe_flip(const byte_list_t *list, unsigned long long n, uint8_t byte) {
  if (in_list(list, n) || noise_hit()) {
    byte ^= (uint8_t)(1u << (n % 8u));
  }
  return byte;
}

static void write_all(const uint8_t *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(out_fd, data, len);
    if (n < 0) {
      if (errno == EINTR) {
        check_reset();
        continue;
      }
      if (errno == EIO || errno == EPIPE) {
        exit(0);
      }
      perror("tinyedge-posix: write");
      exit(1);
    }
    data += n;
    len -= (size_t)n;
  }
}

/* Move bytes that have arrived into the emulated FIFO, waiting up to timeout_ms for the first. */
static void pump(int timeout_ms) {
  struct pollfd p;
  uint8_t chunk[4096];
  unsigned long long dropped = 0;
  p.fd = in_fd;
  p.events = POLLIN;
  for (;;) {
    ssize_t n;
    ssize_t i;
    int ready = poll(&p, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) {
      check_reset();
      continue;
    }
    if (ready <= 0 || !(p.revents & POLLIN)) {
      if (ready > 0 && use_stdio) {
        exit(0);
      }
      break;
    }
    n = read(in_fd, chunk, sizeof chunk);
    if (n <= 0) {
      if (n == 0 && use_stdio) {
        exit(0);
      }
      break;
    }
    for (i = 0; i < n; i++) {
      if (fifo_count < fifo_limit) {
        fifo[(fifo_head + fifo_count++) % FIFO_CAPACITY] = chunk[i];
      } else {
        dropped++;
      }
    }
    timeout_ms = 0;
  }
  if (dropped) {
    overrun_bytes += dropped;
    fprintf(stderr, "tinyedge-posix: UART overrun: dropped %llu bytes (receive FIFO holds %u)\n", dropped,
            (unsigned)fifo_limit);
  }
}

static void discard_pending_input(void) {
  uint32_t limit = fifo_limit;
  fifo_limit = FIFO_CAPACITY;
  fifo_count = 0;
  pump(0);
  fifo_count = 0;
  fifo_limit = limit;
}

static void open_pseudo_terminal(void) {
  struct termios raw;
  const char *name;
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || (name = ptsname(master)) == NULL) {
    perror("tinyedge-posix: cannot create a pseudo-terminal");
    exit(1);
  }
  /* Holding the slave open keeps the master readable while hosts come and go, and lets us
   * switch echo and line editing off before anyone else opens it. */
  slave_fd = open(name, O_RDWR | O_NOCTTY);
  if (slave_fd < 0 || tcgetattr(slave_fd, &raw) != 0) {
    perror("tinyedge-posix: cannot open the pseudo-terminal's slave side");
    exit(1);
  }
  cfmakeraw(&raw);
  tcsetattr(slave_fd, TCSANOW, &raw);
  in_fd = master;
  out_fd = master;
  printf("tinyedge: serving on %s\n", name);
  fflush(stdout);
}

static void print_usage(const char *program) {
  printf("usage: %s [--stdio]\n"
         "Serve the tinyedge protocol on a new pseudo-terminal (its path is printed as\n"
         "'tinyedge: serving on PATH'), or on stdin/stdout with --stdio.\n"
         "Fault injection for tests: see TE_POSIX_* in firmware/ports/posix/te_port_posix.h.\n",
         program);
}

int te_posix_configure(int argc, char **argv) {
  struct sigaction action;
  int i;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--stdio") == 0) {
      use_stdio = 1;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_usage(argv[0]);
      return 0;
    } else {
      fprintf(stderr, "tinyedge-posix: unknown option '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  fifo_limit = (uint32_t)env_number("TE_POSIX_RX_FIFO", FIFO_CAPACITY);
  if (fifo_limit == 0 || fifo_limit > FIFO_CAPACITY) {
    fifo_limit = FIFO_CAPACITY;
  }
  reset_at_rx = env_number("TE_POSIX_RESET_AT_RX", 0);
  parse_list("TE_POSIX_FLIP_RX", &flip_rx);
  parse_list("TE_POSIX_FLIP_TX", &flip_tx);
  {
    const char *noise = getenv("TE_POSIX_NOISE");
    const char *comma = noise ? strchr(noise, ',') : NULL;
    noise_every = noise ? strtoul(noise, NULL, 0) : 0;
    if (comma) {
      noise_state ^= strtoull(comma + 1, NULL, 0) * 0x2545F4914F6CDD1DULL;
    }
  }
  boot_delay_ms = (unsigned long)env_number("TE_POSIX_BOOT_DELAY_MS", 0);
  boot_noise = (int)env_number("TE_POSIX_BOOT_NOISE", 0);
  stack_scan_ms = (unsigned long)env_number("TE_POSIX_STACK_SCAN_MS", 0);

  memset(&action, 0, sizeof action);
  action.sa_handler = on_reset_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR1, &action, NULL);
  signal(SIGPIPE, SIG_IGN);
  return -1;
}

static void sleep_ms(unsigned long ms) {
  struct timespec pause;
  pause.tv_sec = (time_t)(ms / 1000u);
  pause.tv_nsec = (long)(ms % 1000u) * 1000000L;
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
}

void te_port_init(uint32_t baud) {
  (void)baud;
  if (in_fd < 0) {
    if (use_stdio) {
      in_fd = STDIN_FILENO;
      out_fd = STDOUT_FILENO;
    } else {
      open_pseudo_terminal();
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &boot_time);
  sleep_ms(boot_delay_ms);
  discard_pending_input();
}

/* Only with TE_POSIX_STACK_SCAN_MS: a scan that takes time, as a painted-stack scan does under QEMU. */
uint32_t te_port_stack_used(void) {
  sleep_ms(stack_scan_ms);
  return stack_scan_ms ? 1024u : 0u;
}

int te_port_read_byte(uint32_t timeout_ms) {
  uint8_t byte;
  check_reset();
  pump(0);
  if (fifo_count == 0) {
    pump((int)timeout_ms);
  }
  check_reset();
  if (fifo_count == 0) {
    return -1;
  }
  byte = fifo[fifo_head];
  fifo_head = (fifo_head + 1u) % FIFO_CAPACITY;
  fifo_count--;
  rx_count++;
  if (reset_at_rx && rx_count == reset_at_rx) {
    reset_at_rx = 0;
    reset_requested = 1;
    check_reset();
  }
  return maybe_flip(&flip_rx, rx_count, byte);
}

void te_port_write(const uint8_t *data, size_t len) {
  uint8_t chunk[256];
  check_reset();
  while (len > 0) {
    size_t n = len < sizeof chunk ? len : sizeof chunk;
    size_t i;
    for (i = 0; i < n; i++) {
      chunk[i] = maybe_flip(&flip_tx, ++tx_count, data[i]);
    }
    write_all(chunk, n);
    data += n;
    len -= n;
  }
}

static uint64_t nanos_since_boot(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)(now.tv_sec - boot_time.tv_sec) * 1000000000ULL + (uint64_t)now.tv_nsec -
         (uint64_t)boot_time.tv_nsec;
}

uint32_t te_port_cycles(void) { return (uint32_t)nanos_since_boot(); }

uint32_t te_port_cycle_hz(void) { return 1000000000UL; }

uint32_t te_port_micros(void) { return (uint32_t)(nanos_since_boot() / 1000u) + 1u; }

void te_port_boot_banner(const char *text) {
  static const uint8_t garbage[] = {0xFF, 0x00, 0xF8, 0x82, 0x01, 0x07, 0x00, 0x1B, 0x5B, 0x30, 0x6D, 0x00};
  static const char bootloader[] = "\r\nets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13\r\n";
  if (boot_noise) {
    write_all(garbage, sizeof garbage);
    write_all((const uint8_t *)bootloader, sizeof bootloader - 1u);
  }
  write_all((const uint8_t *)text, strlen(text));
  write_all((const uint8_t *)"\r\n", 2u);
}
