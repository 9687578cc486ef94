// Weighted block quantizers for the ggml types GGUF export writes (see ggml_quant.h).
// Written here rather than linked from ggml: the product does not depend on llama.cpp, and the
// importance-weighted candidate search is this project's (llama.cpp's imatrix quantizers weigh
// with its own heuristic); the plain reference rounding is reproduced for comparison.
#include "quant/ggml_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/half.h"
#include "io/gguf_dequant.h"
#include <vector>

namespace awq {

namespace {
constexpr int QK = 32;

struct Q40 { uint16_t d; uint8_t qs[16]; };
struct Q41 { uint16_t d, m; uint8_t qs[16]; };
struct Q80 { uint16_t d; int8_t qs[32]; };
static_assert(sizeof(Q40) == 18 && sizeof(Q41) == 20 && sizeof(Q80) == 34);

float rnd(float v) { return std::nearbyint(v); }

// Weighted squared error of x against d * L + m (d, m as stored: fp16).
double werr(const float* x, const float* w, const int* L, float d, float m) {
  double e = 0;
  for (int j = 0; j < QK; ++j) {
    const double r = (double)x[j] - ((double)L[j] * d + m);
    e += w[j] * r * r;
  }
  return e;
}

// The value of largest magnitude (0 for an all-zero block).
float signed_max(const float* x) {
  float amax = 0, mx = 0;
  for (int j = 0; j < QK; ++j)
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), mx = x[j];
  return mx;
}

// ---- Q4_0: x = (q - 8) * d, q in 0..15 (codes L = q - 8 in -8..7) -------------------------
void ref_q4_0(const float* x, int* L, float* d_out) {
  const float d = signed_max(x) / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < QK; ++j) L[j] = std::min(15, (int)(x[j] * id + 8.5f)) - 8;
  *d_out = round_fp16(d);
}

// Codes for scale 1/iscale, then the weighted least-squares d for them.
float codes_sym(const float* x, const float* w, float iscale, int lo, int hi, int* L) {
  double sxl = 0, sll = 0;
  for (int j = 0; j < QK; ++j) {
    L[j] = std::clamp((int)rnd(x[j] * iscale), lo, hi);
    sxl += (double)w[j] * x[j] * L[j];
    sll += (double)w[j] * L[j] * L[j];
  }
  return sll > 0 ? (float)(sxl / sll) : 0.0f;
}

void search_sym(const float* x, const float* w, int lo, int hi, float nmax_ref, int* best_L,
                float* best_d, const int* ref_L, float ref_d) {
  // reference first: the search never returns something worse than it
  std::copy(ref_L, ref_L + QK, best_L);
  *best_d = ref_d;
  double best = werr(x, w, ref_L, ref_d, 0);
  const float mx = signed_max(x);
  if (mx == 0) return;
  int L[QK];
  auto consider = [&](float d) {
    const float d16 = round_fp16(d);
    if (d16 == 0 || !std::isfinite(d16)) return;
    // codes for the stored scale, then evaluate
    const float id = 1.0f / d16;
    for (int j = 0; j < QK; ++j) L[j] = std::clamp((int)rnd(x[j] * id), lo, hi);
    const double e = werr(x, w, L, d16, 0);
    if (e < best) best = e, *best_d = d16, std::copy(L, L + QK, best_L);
  };
  // Both sign conventions: the signed extreme mapped to the -lo end or to the +hi end.
  // Each candidate: codes for a trial scale, then the weighted least-squares scale for them.
  for (int is = -9; is <= 9; ++is) {
    for (float target : {(float)lo, (float)hi}) {
      const float iscale = (target + (target < 0 ? -0.1f : 0.1f) * is * nmax_ref / 8.0f) / mx;
      if (!std::isfinite(iscale) || iscale == 0) continue;
      const float dls = codes_sym(x, w, iscale, lo, hi, L);
      if (dls != 0) consider(dls);
    }
  }
  // one refinement: refit d to the best codes, re-round, keep if better
  double sxl = 0, sll = 0;
  for (int j = 0; j < QK; ++j)
    sxl += (double)w[j] * x[j] * best_L[j], sll += (double)w[j] * best_L[j] * best_L[j];
  if (sll > 0) consider((float)(sxl / sll));
}

// ---- Q4_1: x = q * d + m, q in 0..15 ---------------------------------------------------------
void ref_q4_1(const float* x, int* L, float* d_out, float* m_out) {
  float mn = x[0], mx = x[0];
  for (int j = 1; j < QK; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
  const float d = (mx - mn) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < QK; ++j) L[j] = std::min(15, (int)((x[j] - mn) * id + 0.5f));
  *d_out = round_fp16(d);
  *m_out = round_fp16(mn);
}

void search_q4_1(const float* x, const float* w, int* best_L, float* best_d, float* best_m) {
  ref_q4_1(x, best_L, best_d, best_m);
  double best = werr(x, w, best_L, *best_d, *best_m);
  float mn = x[0], mx = x[0];
  for (int j = 1; j < QK; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
  const float r = mx - mn;
  if (r <= 0) return;
  int L[QK];
  auto evaluate = [&](float d, float m) {
    const float d16 = round_fp16(d), m16 = round_fp16(m);
    if (d16 <= 0 || !std::isfinite(d16) || !std::isfinite(m16)) return;
    const float id = 1.0f / d16;
    for (int j = 0; j < QK; ++j) L[j] = std::clamp((int)rnd((x[j] - m16) * id), 0, 15);
    const double e = werr(x, w, L, d16, m16);
    if (e < best) best = e, *best_d = d16, *best_m = m16, std::copy(L, L + QK, best_L);
  };
  // weighted least squares of (d, m) for fixed codes
  auto refit = [&](const int* C, float* d, float* m) {
    double sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
    for (int j = 0; j < QK; ++j) {
      sw += w[j], sl += (double)w[j] * C[j], sll += (double)w[j] * C[j] * C[j];
      sx += (double)w[j] * x[j], sxl += (double)w[j] * x[j] * C[j];
    }
    const double det = sw * sll - sl * sl;
    if (det <= 1e-30 * std::max(1.0, sw * sll)) return false;
    *d = (float)((sw * sxl - sl * sx) / det);
    *m = (float)((sll * sx - sl * sxl) / det);
    return *d > 0;
  };
  int C[QK];
  for (int a = 0; a <= 5; ++a)
    for (int b = 0; b <= 5; ++b) {
      const float lo = mn + 0.02f * a * r, hi = mx - 0.02f * b * r;
      if (hi <= lo) continue;
      const float d = (hi - lo) / 15.0f, id = 1.0f / d;
      for (int j = 0; j < QK; ++j) C[j] = std::clamp((int)rnd((x[j] - lo) * id), 0, 15);
      float d2, m2;
      if (refit(C, &d2, &m2)) evaluate(d2, m2);
    }
  float d2, m2;
  std::copy(best_L, best_L + QK, C);
  if (refit(C, &d2, &m2)) evaluate(d2, m2);
}

// ---- Q8_0: x = q * d, q in -127..127 (reference uses roundf over +-127) ------------------------
void ref_q8_0(const float* x, int* L, float* d_out) {
  float amax = 0;
  for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < QK; ++j) L[j] = (int)std::round(x[j] * id);
  *d_out = round_fp16(d);
}

bool all_finite(const float* x, int64_t n, int64_t* bad) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) {
      *bad = i;
      return false;
    }
  return true;
}

void pack_q4(const int* q /* 0..15 */, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
}

// One block of t in ggml's layout from its codes L (Q4_0: -8..7, Q4_1: 0..15, Q8_0: -127..127)
// and its scale d (and offset m for Q4_1), both fp16-representable.
void store_block(GGMLType t, const int* L, float d, float m, uint8_t* out) {
  if (t == GGMLType::Q4_0) {
    Q40 b;
    int q[QK];
    for (int j = 0; j < QK; ++j) q[j] = L[j] + 8;
    b.d = f32_to_fp16(d);
    pack_q4(q, b.qs);
    std::memcpy(out, &b, sizeof b);
  } else if (t == GGMLType::Q4_1) {
    Q41 b;
    b.d = f32_to_fp16(d), b.m = f32_to_fp16(m);
    pack_q4(L, b.qs);
    std::memcpy(out, &b, sizeof b);
  } else {  // Q8_0
    Q80 b;
    b.d = f32_to_fp16(d);
    for (int j = 0; j < QK; ++j) b.qs[j] = (int8_t)L[j];
    std::memcpy(out, &b, sizeof b);
  }
}

}  // namespace

bool ggml_can_quantize(GGMLType t) {
  return t == GGMLType::F32 || t == GGMLType::F16 || ggml_is_block_type(t);
}

size_t ggml_row_bytes(GGMLType t, int64_t n) {
  uint32_t be = 0, bb = 0;
  if (!ggml_type_layout((uint32_t)t, &be, &bb) || be == 0) return 0;
  return (size_t)(n / be) * bb;
}

bool ggml_is_block_type(GGMLType t) {
  return t == GGMLType::Q8_0 || t == GGMLType::Q4_0 || t == GGMLType::Q4_1;
}

void quantize_block_reference(GGMLType t, const float* x, uint8_t* out) {
  int L[QK];
  float d = 0, m = 0;
  if (t == GGMLType::Q4_0) ref_q4_0(x, L, &d);
  else if (t == GGMLType::Q4_1) ref_q4_1(x, L, &d, &m);
  else if (t == GGMLType::Q8_0) ref_q8_0(x, L, &d);
  else return;
  store_block(t, L, d, m, out);
}

Status quantize_row_ggml(GGMLType t, const float* x, int64_t n, const float* imp, uint8_t* out) {
  if (!ggml_can_quantize(t))
    return make_error("GGUF export: type ", ggml_type_name((uint32_t)t),
                      " is not written (supported: F32, F16, Q8_0, Q4_0, Q4_1)");
  int64_t bad = 0;
  if (!all_finite(x, n, &bad))
    return make_error("GGUF export: non-finite weight at column ", bad);
  if (t == GGMLType::F32) {
    std::memcpy(out, x, sizeof(float) * n);
    return Status::Ok();
  }
  if (t == GGMLType::F16) {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_fp16(x[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    return Status::Ok();
  }
  if (n % QK != 0)
    return make_error("GGUF export: row length ", n, " is not a multiple of ",
                      ggml_type_name((uint32_t)t), "'s block of ", QK);
  const size_t bb = ggml_row_bytes(t, QK);
  float w[QK];
  int L[QK], R[QK];
  for (int64_t b0 = 0; b0 < n; b0 += QK) {
    const float* xb = x + b0;
    double sw = 0;
    for (int j = 0; j < QK; ++j) {
      w[j] = imp ? std::max(0.0f, imp[b0 + j]) : 1.0f;
      sw += w[j];
    }
    if (!(sw > 0)) std::fill(w, w + QK, 1.0f);  // channels never active: plain squared error
    float d = 0, m = 0;
    if (t == GGMLType::Q4_1) {
      search_q4_1(xb, w, L, &d, &m);
    } else {
      const bool q4 = t == GGMLType::Q4_0;
      float rd;
      if (q4) ref_q4_0(xb, R, &rd);
      else ref_q8_0(xb, R, &rd);
      search_sym(xb, w, q4 ? -8 : -127, q4 ? 7 : 127, q4 ? 8.0f : 127.0f, L, &d, R, rd);
    }
    store_block(t, L, d, m, out + (size_t)(b0 / QK) * bb);
  }
  return Status::Ok();
}

void fake_quantize_ggml(GGMLType t, float* W, int64_t N, int64_t K, const float* imp) {
  const size_t rb = ggml_row_bytes(t, K);
#pragma omp parallel
  {
    std::vector<uint8_t> buf(rb);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      float* row = W + r * K;
      if (quantize_row_ggml(t, row, K, imp, buf.data()).ok())
        (void)dequantize_ggml((uint32_t)t, buf.data(), rb, row, (size_t)K, "fake_quantize_ggml");
    }
  }
}

}  // namespace awq
