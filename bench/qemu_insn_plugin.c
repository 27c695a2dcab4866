// A QEMU TCG plugin that counts the guest instructions a process executes, with markers the
// guest sets: bench/qemu_insn.py loads it into qemu-aarch64 to count the instructions of one
// inference of an aarch64 artifact (an instruction-count proxy under emulation, not time).
//
//   qemu-aarch64 -plugin libqemu_insn.so,out=counts.txt[,marker=4000] PROGRAM ...
//
// The guest marks a point by calling syscall(marker, label) (no such system call exists, so
// it returns ENOSYS and does nothing else, here and on a board); the plugin records the label
// and the instructions counted so far. At exit it writes "mark LABEL COUNT" per marker and
// "total COUNT" to `out`.
//
// Counting: each translation block adds its instruction count when it starts executing (an
// exception in the middle of a block would over-count the rest of it; a system call ends a
// block). The adds are atomic, so threads do not lose counts; single-threaded runs are what
// make per-inference counts exact (a thread pool's idle spinning is counted too).
//
// Debian ships qemu-user 7.2 with plugin support but no qemu-plugin.h, so the few entry
// points used are declared below: QEMU's plugin API version 1 (QEMU 4.2 to 7.x), a C ABI.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_EXPORT __attribute__((visibility("default")))

// --- the subset of QEMU's plugin API (version 1) this plugin uses ---
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;  // only passed through
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                                              int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                                              uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                                              uint64_t a8);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb* tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);
void qemu_plugin_outs(const char* string);
// --- end of the API subset ---

PLUGIN_EXPORT int qemu_plugin_version = 1;

enum { kMaxMarks = 4096 };

static uint64_t total;  // instructions executed so far, all threads
static int64_t marker_syscall = 4000;
static const char* out_path;
static struct {
  uint64_t label, count;
} marks[kMaxMarks];
static unsigned n_marks;  // may exceed kMaxMarks: the overflow is reported, not stored

static void on_tb_exec(unsigned int vcpu_index, void* n_insns) {
  (void)vcpu_index;
  __atomic_fetch_add(&total, (uint64_t)(uintptr_t)n_insns, __ATOMIC_RELAXED);
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  uintptr_t n = qemu_plugin_tb_n_insns(tb);
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void*)n);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                       uint64_t a8) {
  (void)id, (void)vcpu_index, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
  if (num != marker_syscall) return;
  unsigned i = __atomic_fetch_add(&n_marks, 1, __ATOMIC_RELAXED);
  if (i < kMaxMarks) {
    marks[i].label = a1;
    marks[i].count = __atomic_load_n(&total, __ATOMIC_RELAXED);
  }
}

static void on_qemu_exit(qemu_plugin_id_t id, void* userdata) {
  (void)id, (void)userdata;
  FILE* f = fopen(out_path, "w");
  if (!f) {
    qemu_plugin_outs("qemu_insn plugin: cannot write its output file\n");
    return;
  }
  unsigned n = n_marks < kMaxMarks ? n_marks : kMaxMarks;
  for (unsigned i = 0; i < n; ++i) {
    fprintf(f, "mark %llu %llu\n", (unsigned long long)marks[i].label,
            (unsigned long long)marks[i].count);
  }
  if (n_marks > kMaxMarks) fprintf(f, "dropped_marks %u\n", n_marks - kMaxMarks);
  fprintf(f, "total %llu\n", (unsigned long long)__atomic_load_n(&total, __ATOMIC_RELAXED));
  fclose(f);
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                      char** argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "out=", 4) == 0) {
      out_path = argv[i] + 4;  // argv outlives the plugin (QEMU keeps it)
    } else if (strncmp(argv[i], "marker=", 7) == 0) {
      marker_syscall = strtoll(argv[i] + 7, NULL, 0);
    } else {
      qemu_plugin_outs("qemu_insn plugin: unknown argument (takes out=PATH, marker=N)\n");
      return 1;
    }
  }
  if (!out_path || !*out_path) {
    qemu_plugin_outs("qemu_insn plugin: out=PATH is required\n");
    return 1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
  qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
  return 0;
}
