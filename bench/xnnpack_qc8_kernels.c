/*
 * Which XNNPACK microkernels an int8 (qc8) convolution gets on a CPU: creates a 3x3, a 1x1
 * and a depthwise qc8 convolution and prints each function pointer in the operator that
 * lies in libXNNPACK (offset from the library's base; the microkernels are not exported).
 * Disassemble at those offsets to see the instructions (README "int8 on ARM"):
 *   R=build/xnnpack/aarch64/usr
 *   aarch64-linux-gnu-gcc -O1 -I$R/include bench/xnnpack_qc8_kernels.c -o /tmp/probe \
 *     -L$R/lib/aarch64-linux-gnu -lXNNPACK -Wl,-rpath-link,$R/lib/aarch64-linux-gnu
 *   qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu \
 *     -E LD_LIBRARY_PATH=$R/lib/aarch64-linux-gnu /tmp/probe        (rpi4; cortex-a76: rpi5)
 *   aarch64-linux-gnu-objdump -d --start-address=OFFSET --stop-address=OFFSET+8192 \
 *     $R/lib/aarch64-linux-gnu/libXNNPACK.so.0 | grep -c sdot
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xnnpack.h>

static void scan(const char* what, xnn_operator_t op) {
  size_t n = malloc_usable_size(op) / sizeof(void*);
  void** p = (void**)op;
  for (size_t i = 0; i < n; ++i) {
    Dl_info info;
    if (p[i] && dladdr(p[i], &info) && info.dli_fname && strstr(info.dli_fname, "XNNPACK"))
      printf("%s: offset %ld (%s)\n", what, (long)((char*)p[i] - (char*)info.dli_fbase),
             info.dli_saddr == p[i] && info.dli_sname ? info.dli_sname : "not exported");
  }
  xnn_delete_operator(op);
}

int main(void) {
  if (xnn_initialize(NULL) != xnn_status_success) {
    puts("init failed");
    return 1;
  }
  int8_t w[64 * 64 * 9];
  memset(w, 1, sizeof w);
  int32_t b[64] = {0};
  float s[64];
  for (int i = 0; i < 64; ++i) s[i] = 0.01f;
  xnn_operator_t op = NULL;
  // 3x3 conv 64 -> 64 (igemm), 1x1 (gemm), depthwise 3x3 (dwconv)
  if (xnn_create_convolution2d_nhwc_qc8(1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 64, 64, 64, 64, 0, 0.1f, s,
                                        w, b, 0, 0.1f, -128, 127, 0, &op) == 0)
    scan("conv3x3", op);
  else
    puts("conv3x3 create failed");
  if (xnn_create_convolution2d_nhwc_qc8(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 64, 64, 64, 64, 0, 0.1f, s,
                                        w, b, 0, 0.1f, -128, 127, 0, &op) == 0)
    scan("conv1x1", op);
  if (xnn_create_convolution2d_nhwc_qc8(1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 64, 1, 1, 64, 64, 0, 0.1f, s,
                                        w, b, 0, 0.1f, -128, 127, 0, &op) == 0)
    scan("depthwise3x3", op);
  return 0;
}
