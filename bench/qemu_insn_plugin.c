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

#include <pthread.h>
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
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb* tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);
void qemu_plugin_outs(const char* string);
// --- end of the API subset ---

PLUGIN_EXPORT int qemu_plugin_version = 1;

enum { kBlockRecords = 1 << 16, kMaxBlocks = 1 << 12, kPageSlots = 1 << 18 };

// One record per translated block: its first guest address, its instruction count, and how
// often it started executing. Records live until exit (a block translated again gets another).
typedef struct {
  uint64_t vaddr, n_insns, execs;
} BlockRecord;

static uint64_t total;  // instructions executed so far, all threads
static int64_t marker_syscall = 4000;
static FILE* out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;  // records' allocation, out's writes
static BlockRecord* blocks[kMaxBlocks];
static uint64_t n_records;
static uint64_t page_keys[kPageSlots], page_counts[kPageSlots];  // snapshot scratch (locked)

static void on_tb_exec(unsigned int vcpu_index, void* record) {
  (void)vcpu_index;
  BlockRecord* r = record;
  __atomic_fetch_add(&r->execs, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&total, r->n_insns, __ATOMIC_RELAXED);
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  pthread_mutex_lock(&lock);
  uint64_t i = n_records++;
  if (i / kBlockRecords >= kMaxBlocks) {
    pthread_mutex_unlock(&lock);
    qemu_plugin_outs("qemu_insn plugin: too many translated blocks\n");
    abort();
  }
  BlockRecord** block = &blocks[i / kBlockRecords];
  if (!*block && !(*block = calloc(kBlockRecords, sizeof(BlockRecord)))) abort();
  BlockRecord* r = &(*block)[i % kBlockRecords];
  r->vaddr = qemu_plugin_tb_vaddr(tb);
  r->n_insns = qemu_plugin_tb_n_insns(tb);
  pthread_mutex_unlock(&lock);
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, r);
}

// Instructions executed so far per 4 KiB page of guest code, written as "page LABEL ADDR N".
static void write_pages(uint64_t label) {
  memset(page_keys, 0xff, sizeof(page_keys));
  memset(page_counts, 0, sizeof(page_counts));
  for (uint64_t i = 0; i < n_records; ++i) {
    const BlockRecord* r = &blocks[i / kBlockRecords][i % kBlockRecords];
    uint64_t execs = __atomic_load_n(&r->execs, __ATOMIC_RELAXED);
    if (!execs) continue;
    uint64_t page = r->vaddr >> 12, slot = (page * 0x9E3779B97F4A7C15ull) >> 46;
    while (page_keys[slot] != page && page_keys[slot] != UINT64_MAX) {
      slot = (slot + 1) % kPageSlots;
    }
    page_keys[slot] = page;
    page_counts[slot] += execs * r->n_insns;
  }
  for (uint64_t s = 0; s < kPageSlots; ++s) {
    if (page_keys[s] == UINT64_MAX) continue;
    fprintf(out, "page %llu %llu %llu\n", (unsigned long long)label,
            (unsigned long long)(page_keys[s] << 12), (unsigned long long)page_counts[s]);
  }
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                       uint64_t a8) {
  (void)id, (void)vcpu_index, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
  if (num != marker_syscall) return;
  uint64_t count = __atomic_load_n(&total, __ATOMIC_RELAXED);
  pthread_mutex_lock(&lock);
  fprintf(out, "mark %llu %llu\n", (unsigned long long)a1, (unsigned long long)count);
  if (a2 == 1) write_pages(a1);
  pthread_mutex_unlock(&lock);
}

static void on_qemu_exit(qemu_plugin_id_t id, void* userdata) {
  (void)id, (void)userdata;
  pthread_mutex_lock(&lock);
  fprintf(out, "total %llu\n", (unsigned long long)__atomic_load_n(&total, __ATOMIC_RELAXED));
  fclose(out);
  out = NULL;
  pthread_mutex_unlock(&lock);
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                      char** argv) {
  (void)info;
  const char* out_path = NULL;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "out=", 4) == 0) {
      out_path = argv[i] + 4;
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
  if (!(out = fopen(out_path, "w"))) {
    qemu_plugin_outs("qemu_insn plugin: cannot open its output file\n");
    return 1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
  qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
  return 0;
}
