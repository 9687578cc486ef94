// AVX-512 W4 kernels: the AVX2 kernels (w4_avx2.cpp), selected when CPUID reports the AVX-512 set
// of CMakeLists.txt. The previous AVX-512 decode kernel was written for the old nibble-per-row
// layout; the current layout (kernels/w4.h) is read by the AVX2 I8/F32 kernels, which run
// unchanged on AVX-512 hosts. A 512-bit VNNI (vpdpbusd) I8 kernel is the natural next step, but
// it cannot be executed on the development machine, so it is not written yet (docs/KERNELS.md).
// This file stays so that the AVX-512 table, its dispatch and its tests keep one place to grow.
#include "kernels/cpu/w4_kernels.h"

namespace awq::detail {

W4Kernels w4_kernels_avx512() {
  W4Kernels k = w4_kernels_avx2();
  k.isa = Isa::Avx512;
  return k;
}

}  // namespace awq::detail
