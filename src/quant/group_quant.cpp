#include "quant/group_quant.h"

#include <cmath>

#include "core/half.h"

#if defined(__FAST_MATH__)
#error "group_quant.cpp relies on IEEE rounding (round-half-even trick); do not build with -ffast-math"
#endif

// GCC refuses to if-convert the clamps (and so to vectorize the loops) while it must preserve
// floating-point exception flags; nothing here reads them. Results are unchanged.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace awq {

namespace {

// Round half to even without a libm call, so the loops vectorize on any x86-64/ARM target.
// For |x| < 2^22, x + 1.5*2^23 lands in [2^23, 2^24) where the float spacing is 1, so the
// addition itself rounds x to an integer with the current (default: nearest-even) mode.
// Larger |x| is first saturated to +-2^22: every caller clamps the result to a code range far
// inside that, so saturating gives the same code as rounding exactly. NaN stays NaN.
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23
constexpr float kRoundLimit = 4194304.0f;   // 2^22
inline float round_even(float x) {
  x = x < -kRoundLimit ? -kRoundLimit : x;
  x = x > kRoundLimit ? kRoundLimit : x;
  return (x + kRoundMagic) - kRoundMagic;
}
inline float clampf(float x, float lo, float hi) {
  x = x < lo ? lo : x;
  return x > hi ? hi : x;
}

struct GroupParams {
  float scale;  // fp16-representable
  float zero;   // asymmetric: z in [0, qmax]; symmetric: 0
  float qmin, qmax;
};

// Scale and zero of one group of n weights (the contract in group_quant.h).
inline GroupParams group_params(const float* w, int64_t n, int w_bit, bool zero_point) {
  float mn = w[0], mx = w[0];
#pragma omp simd reduction(min : mn) reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) {
    mn = w[i] < mn ? w[i] : mn;
    mx = w[i] > mx ? w[i] : mx;
  }
  GroupParams p;
  if (zero_point) {
    p.qmin = 0.0f;
    p.qmax = float((1 << w_bit) - 1);
    float range = mx - mn;
    range = range < 1e-5f ? 1e-5f : range;
    p.scale = round_fp16(range / p.qmax);
    p.zero = clampf(-round_even(mn / p.scale), p.qmin, p.qmax);
  } else {
    p.qmin = -float(1 << (w_bit - 1));
    p.qmax = float((1 << (w_bit - 1)) - 1);
    float amax = std::fabs(mn) > std::fabs(mx) ? std::fabs(mn) : std::fabs(mx);
    amax = amax < 1e-5f ? 1e-5f : amax;
    p.scale = round_fp16(amax / p.qmax);
    p.zero = 0.0f;
  }
  return p;
}

// One row of fake quantization. Kept out of line so each row is one vectorized call; on x86-64
// GCC also compiles an AVX2 clone (8-wide division), picked once at load time. Both clones do
// the same IEEE operations (no FMA contraction: there is no multiply-add), so results match.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
void fake_quantize_row(float* row, int64_t K, int64_t G, int w_bit, bool zero_point) {
  for (int64_t g0 = 0; g0 < K; g0 += G) {
    float* w = row + g0;
    const int64_t n = (K - g0) < G ? (K - g0) : G;
    const GroupParams p = group_params(w, n, w_bit, zero_point);
    const float s = p.scale, z = p.zero, lo = p.qmin, hi = p.qmax;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float q = clampf(round_even(w[i] / s) + z, lo, hi);
      w[i] = (q - z) * s;
    }
  }
}

}  // namespace

int effective_group(const QuantConfig& cfg, int K) { return cfg.group_size > 0 ? cfg.group_size : K; }

bool awq_gemm_supported(const QuantConfig& cfg) { return cfg.w_bit == 4 && cfg.zero_point; }

Status check_quant_shape(const QuantConfig& cfg, int64_t N, int64_t K, const char* what) {
  if (cfg.w_bit < 2 || cfg.w_bit > 8)
    return make_error(what, ": w_bit ", cfg.w_bit, " is not supported (use 2..8; 4 is the default)");
  if (cfg.group_size == 0 || cfg.group_size < -1)
    return make_error(what, ": group_size ", cfg.group_size,
                      " is invalid (use -1 for per-channel or a positive size such as 128)");
  if (N <= 0 || K <= 0)
    return make_error(what, ": empty weight [", N, ", ", K, "]");
  if (K > (int64_t(1) << 30) || N > (int64_t(1) << 30))
    return make_error(what, ": weight [", N, ", ", K, "] is too large");
  const int64_t G = cfg.group_size > 0 ? cfg.group_size : K;
  if (K % G != 0)
    return make_error(what, ": input size ", K, " is not a multiple of group_size ", G,
                      " (choose a group size that divides ", K, ", or -1 for per-channel)");
  return Status::Ok();
}

void fake_quantize(float* W, int64_t N, int64_t K, const QuantConfig& cfg) {
  if (N <= 0 || K <= 0) return;
  const int64_t G = cfg.group_size > 0 ? cfg.group_size : K;
  const int w_bit = cfg.w_bit;
  const bool zp = cfg.zero_point;
  // Small matrices are not worth waking the thread team.
#pragma omp parallel for schedule(static) if (N * K >= (int64_t(1) << 15))
  for (int64_t r = 0; r < N; ++r) fake_quantize_row(W + r * K, K, G, w_bit, zp);
}

Expected<QuantizedLinear> quantize_linear(const float* W, int N, int K, const QuantConfig& cfg) {
  AWQ_TRY(check_quant_shape(cfg, N, K));
  const int G = effective_group(cfg, K);
  const int n_groups = K / G;
  // Non-finite weights: report the first one (row, column) instead of writing garbage codes.
  for (int64_t i = 0; i < int64_t(N) * K; ++i) {
    if (!std::isfinite(W[i]))
      return make_error("quantize_linear: weight [", int64_t(i / K), ", ", int64_t(i % K),
                        "] is ", std::isnan(W[i]) ? "NaN" : "infinite",
                        " (the model or the scale search produced a non-finite value)");
  }
  QuantizedLinear ql;
  ql.N = N;
  ql.K = K;
  ql.group_size = G;
  ql.w_bit = cfg.w_bit;
  ql.zero_point = cfg.zero_point;
  ql.q.resize(size_t(N) * K);
  ql.zeros.resize(size_t(N) * n_groups);
  ql.scales.resize(size_t(N) * n_groups);
  const float offset = cfg.zero_point ? 0.0f : float(1 << (cfg.w_bit - 1));
  int bad_row = -1, bad_group = -1;
#pragma omp parallel for schedule(static) if (int64_t(N) * K >= (int64_t(1) << 15))
  for (int r = 0; r < N; ++r) {
    for (int g = 0; g < n_groups; ++g) {
      const float* w = W + int64_t(r) * K + int64_t(g) * G;
      const GroupParams p = group_params(w, G, cfg.w_bit, cfg.zero_point);
      if (!std::isfinite(p.scale)) {
#pragma omp critical(awq_quantize_linear_err)
        if (bad_row < 0) { bad_row = r; bad_group = g; }
        continue;
      }
      uint8_t* q = ql.q.data() + int64_t(r) * K + int64_t(g) * G;
      for (int i = 0; i < G; ++i)
        q[i] = uint8_t(clampf(round_even(w[i] / p.scale) + p.zero, p.qmin, p.qmax) + offset);
      ql.zeros[size_t(r) * n_groups + g] = uint8_t(p.zero + offset);
      ql.scales[size_t(r) * n_groups + g] = f32_to_fp16(p.scale);
    }
  }
  if (bad_row >= 0)
    return make_error("quantize_linear: row ", bad_row, " group ", bad_group,
                      ": the scale overflows fp16 (weight range too large for a ", cfg.w_bit,
                      "-bit fp16-scaled group)");
  return ql;
}

void dequantize_linear(const QuantizedLinear& ql, float* W) {
  const int G = ql.group_size, n_groups = ql.n_groups();
#pragma omp parallel for schedule(static) if (int64_t(ql.N) * ql.K >= (int64_t(1) << 15))
  for (int r = 0; r < ql.N; ++r) {
    for (int g = 0; g < n_groups; ++g) {
      const float s = fp16_to_f32(ql.scales[size_t(r) * n_groups + g]);
      const float z = float(ql.zeros[size_t(r) * n_groups + g]);
      const uint8_t* q = ql.q.data() + int64_t(r) * ql.K + int64_t(g) * G;
      float* w = W + int64_t(r) * ql.K + int64_t(g) * G;
#pragma omp simd
      for (int i = 0; i < G; ++i) w[i] = (float(q[i]) - z) * s;
    }
  }
}

}  // namespace awq
