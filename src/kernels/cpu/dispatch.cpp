// Run-time ISA selection for the W4 kernels: CPUID (+ XGETBV for OS register support), and the
// AWQ_ISA=scalar|avx2|avx512 override. Compiled for baseline x86-64.
#include <cpuid.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cpu/w4_kernels.h"

namespace awq {
namespace {

struct HostIsas {
  bool avx2 = false;    // AVX2 + FMA + F16C + BMI2, YMM state enabled by the OS
  bool avx512 = false;  // + AVX-512 F/BW/VL/DQ/VNNI/BF16 (the flags w4_avx512.cpp is built with)
};

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

HostIsas detect() {
  HostIsas h;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return h;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return h;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xE6) == 0xE6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return h;
  const bool avx2 = b & (1u << 5), bmi2 = b & (1u << 8);
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  unsigned a1 = 0, b1, c1, d1;
  __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
  const bool bf16 = a1 & (1u << 5);
  h.avx2 = ymm_os && avx2 && fma && f16c && bmi2;
  h.avx512 = h.avx2 && zmm_os && f && dq && bw && vl && vnni && bf16;
  return h;
}

const HostIsas& host() {
  static const HostIsas h = detect();
  return h;
}

Isa best_isa() {
  if (host().avx512) return Isa::Avx512;
  if (host().avx2) return Isa::Avx2;
  return Isa::Scalar;
}

Isa select_isa() {
  std::string warning;
  const Isa isa = detail::w4_resolve_isa(std::getenv("AWQ_ISA"), &warning);
  if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "?";
}

bool w4_isa_available(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return host().avx2;
    case Isa::Avx512:
      return host().avx512;
  }
  return false;
}

std::vector<Isa> w4_available_isas() {
  std::vector<Isa> v{Isa::Scalar};
  if (host().avx2) v.push_back(Isa::Avx2);
  if (host().avx512) v.push_back(Isa::Avx512);
  return v;
}

Isa w4_active_isa() {
  static const Isa isa = select_isa();
  return isa;
}

namespace detail {

Isa w4_resolve_isa(const char* requested, std::string* warning) {
  if (!requested || !*requested) return best_isa();
  std::string v(requested);
  for (char& ch : v) ch = (char)std::tolower((unsigned char)ch);
  Isa want;
  if (v == "scalar") {
    want = Isa::Scalar;
  } else if (v == "avx2") {
    want = Isa::Avx2;
  } else if (v == "avx512") {
    want = Isa::Avx512;
  } else {
    if (warning)
      *warning = "AWQ_ISA=" + std::string(requested) + " is not one of scalar|avx2|avx512; using " +
                 isa_name(best_isa()) + " (the best this host supports)";
    return best_isa();
  }
  if (!w4_isa_available(want)) {
    if (warning)
      *warning = "AWQ_ISA=" + std::string(requested) +
                 " requested but this CPU (or OS) does not support it; falling back to " +
                 isa_name(best_isa());
    return best_isa();
  }
  return want;
}

const W4Kernels& w4_kernels(Isa isa) {
  static const W4Kernels scalar = w4_kernels_scalar();
  static const W4Kernels avx2 = host().avx2 ? w4_kernels_avx2() : scalar;
  static const W4Kernels avx512 = host().avx512 ? w4_kernels_avx512() : scalar;
  switch (isa) {
    case Isa::Avx2:
      return avx2;
    case Isa::Avx512:
      return avx512;
    default:
      return scalar;
  }
}

}  // namespace detail
}  // namespace awq
