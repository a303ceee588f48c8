/* QEMU TCG plugin: how often each translation block runs inside a timed window, and how it left.
 *
 * The window opens when the TB at `start` (the entry of te_runtime_invoke) runs and closes when the
 * TB at `end` (the instruction after the call to it) runs; only the first `windows` windows count.
 * For every TB that ran in a window it records its execution count and, for each exit, whether the
 * next TB began right after its last instruction (fell through) or elsewhere (a taken branch).
 * benchmarks/cycles/cortex_m4.py prices the instructions of each TB with the Cortex-M4 TRM's timings.
 *
 *   -plugin tb_counts.so,start=0x1234,end=0x5678,windows=3,out=/path/counts.txt
 *
 * Output lines: "windows N", then "tb VADDR BYTES INSNS EXECS FELL_THROUGH JUMPED" (hex vaddr).
 * One vCPU (the Cortex-M4 machines have one), so no locking. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct tb_record {
  uint64_t vaddr;
  uint64_t end;          /* the address right after the TB's last instruction */
  uint64_t insns;
  uint64_t execs;
  uint64_t fell_through;
  uint64_t jumped;
  struct tb_record *next;
};

static struct tb_record *records;
static struct tb_record *previous;   /* the TB that ran last inside the open window */
static uint64_t start_addr, end_addr, windows_wanted = 1, windows_done;
static int in_window, written;
static char out_path[4096];

static void write_counts(void) {
  FILE *out = fopen(out_path, "w");
  struct tb_record *r;
  if (out == NULL) {
    fprintf(stderr, "tb_counts: cannot write %s\n", out_path);
    return;
  }
  fprintf(out, "windows %" PRIu64 "\n", windows_done);
  for (r = records; r != NULL; r = r->next) {
    if (r->execs != 0) {
      fprintf(out, "tb %" PRIx64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", r->vaddr,
              r->end - r->vaddr, r->insns, r->execs, r->fell_through, r->jumped);
    }
  }
  fclose(out);
  written = 1;
}

static void on_tb_exec(unsigned int vcpu_index, void *userdata) {
  struct tb_record *tb = userdata;
  (void)vcpu_index;
  if (in_window && previous != NULL) {
    if (tb->vaddr == previous->end) {
      previous->fell_through++;
    } else {
      previous->jumped++;
    }
  }
  if (in_window && tb->vaddr == end_addr) {
    in_window = 0;
    previous = NULL;
    if (++windows_done == windows_wanted) {
      write_counts();
    }
    return;
  }
  if (!in_window && tb->vaddr == start_addr && windows_done < windows_wanted) {
    in_window = 1;
  }
  if (in_window) {
    tb->execs++;
    previous = tb;
  }
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  size_t n = qemu_plugin_tb_n_insns(tb);
  struct qemu_plugin_insn *last = qemu_plugin_tb_get_insn(tb, n - 1);
  struct tb_record *record = calloc(1, sizeof *record);
  (void)id;
  if (record == NULL) {
    abort();
  }
  record->vaddr = qemu_plugin_tb_vaddr(tb);
  record->end = qemu_plugin_insn_vaddr(last) + qemu_plugin_insn_size(last);
  record->insns = n;
  record->next = records;
  records = record;
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, record);
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata) {
  (void)id;
  (void)userdata;
  if (!written) {
    write_counts();
  }
}

static int parse_arg(const char *arg) {
  const char *value = strchr(arg, '=');
  if (value == NULL) {
    return -1;
  }
  value++;
  if (strncmp(arg, "start=", 6) == 0) {
    start_addr = strtoull(value, NULL, 0) & ~1ull;   /* a Thumb symbol's bit 0 is not part of the address */
  } else if (strncmp(arg, "end=", 4) == 0) {
    end_addr = strtoull(value, NULL, 0) & ~1ull;
  } else if (strncmp(arg, "windows=", 8) == 0) {
    windows_wanted = strtoull(value, NULL, 0);
  } else if (strncmp(arg, "out=", 4) == 0) {
    snprintf(out_path, sizeof out_path, "%s", value);
  } else {
    return -1;
  }
  return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  int i;
  (void)info;
  for (i = 0; i < argc; i++) {
    if (parse_arg(argv[i]) != 0) {
      fprintf(stderr, "tb_counts: unknown argument %s (start=, end=, windows=, out=)\n", argv[i]);
      return -1;
    }
  }
  if (start_addr == 0 || end_addr == 0 || out_path[0] == '\0' || windows_wanted == 0) {
    fprintf(stderr, "tb_counts: needs start=ADDR,end=ADDR,out=PATH (and windows=N >= 1)\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
  qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
  return 0;
}
