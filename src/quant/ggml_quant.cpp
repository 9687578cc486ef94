// Weighted block quantizers for the ggml types GGUF export writes (see ggml_quant.h).
// Written here rather than linked from ggml: the product does not depend on llama.cpp, and the
// importance-weighted candidate search is this project's (llama.cpp's imatrix quantizers weigh
// with its own heuristic); the plain reference rounding is reproduced for comparison.
#include "quant/ggml_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/half.h"
#include "io/gguf_dequant.h"

namespace awq {

namespace {
constexpr int QK = 32;    // Q4_0 .. Q8_0 blocks; K-quant sub-blocks of Q4_K / Q5_K
constexpr int QKK = 256;  // K-quant super-blocks

struct Q40 { uint16_t d; uint8_t qs[16]; };
struct Q41 { uint16_t d, m; uint8_t qs[16]; };
struct Q50 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct Q51 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct Q80 { uint16_t d; int8_t qs[32]; };
struct Q4K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct Q5K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct Q6K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
static_assert(sizeof(Q40) == 18 && sizeof(Q41) == 20 && sizeof(Q80) == 34);
static_assert(sizeof(Q50) == 22 && sizeof(Q51) == 24);
static_assert(sizeof(Q4K) == 144 && sizeof(Q5K) == 176 && sizeof(Q6K) == 210);

float rnd(float v) { return std::nearbyint(v); }

// Weighted squared error of x[0..n) against d * L + m.
double werr(const float* x, const float* w, const int* L, float d, float m, int n = QK) {
  double e = 0;
  for (int j = 0; j < n; ++j) {
    const double r = (double)x[j] - ((double)L[j] * d + m);
    e += w[j] * r * r;
  }
  return e;
}

// The value of largest magnitude (0 for an all-zero block).
float signed_max(const float* x, int n = QK) {
  float amax = 0, mx = 0;
  for (int j = 0; j < n; ++j)
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), mx = x[j];
  return mx;
}

// ---- Q4_0 / Q5_0: x = (q - h) * d, q in 0..2h-1 (codes L = q - h in -h..h-1) -------------------
void ref_sym(const float* x, int h, int* L, float* d_out) {
  const float d = signed_max(x) / -(float)h, id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < QK; ++j) L[j] = std::min(2 * h - 1, (int)(x[j] * id + (h + 0.5f))) - h;
  *d_out = round_fp16(d);
}

// Codes for scale 1/iscale, then the weighted least-squares d for them.
float codes_sym(const float* x, const float* w, int n, float iscale, int lo, int hi, int* L) {
  double sxl = 0, sll = 0;
  for (int j = 0; j < n; ++j) {
    L[j] = std::clamp((int)rnd(x[j] * iscale), lo, hi);
    sxl += (double)w[j] * x[j] * L[j];
    sll += (double)w[j] * L[j] * L[j];
  }
  return sll > 0 ? (float)(sxl / sll) : 0.0f;
}

// Symmetric scale search over n values (codes lo..hi), starting from the reference (ref_L,
// ref_d), which it never returns anything worse than. d is rounded to fp16 as stored.
void search_sym(const float* x, const float* w, int n, int lo, int hi, float nmax_ref,
                int* best_L, float* best_d, const int* ref_L, float ref_d) {
  std::copy(ref_L, ref_L + n, best_L);
  *best_d = ref_d;
  double best = werr(x, w, ref_L, ref_d, 0, n);
  const float mx = signed_max(x, n);
  if (mx == 0) return;
  int L[QK];
  auto consider = [&](float d) {
    const float d16 = round_fp16(d);
    if (d16 == 0 || !std::isfinite(d16)) return;
    // codes for the stored scale, then evaluate
    const float id = 1.0f / d16;
    for (int j = 0; j < n; ++j) L[j] = std::clamp((int)rnd(x[j] * id), lo, hi);
    const double e = werr(x, w, L, d16, 0, n);
    if (e < best) best = e, *best_d = d16, std::copy(L, L + n, best_L);
  };
  // Both sign conventions: the signed extreme mapped to the -lo end or to the +hi end.
  // Each candidate: codes for a trial scale, then the weighted least-squares scale for them.
  for (int is = -9; is <= 9; ++is) {
    for (float target : {(float)lo, (float)hi}) {
      const float iscale = (target + (target < 0 ? -0.1f : 0.1f) * is * nmax_ref / 8.0f) / mx;
      if (!std::isfinite(iscale) || iscale == 0) continue;
      const float dls = codes_sym(x, w, n, iscale, lo, hi, L);
      if (dls != 0) consider(dls);
    }
  }
  // one refinement: refit d to the best codes, re-round, keep if better
  double sxl = 0, sll = 0;
  for (int j = 0; j < n; ++j)
    sxl += (double)w[j] * x[j] * best_L[j], sll += (double)w[j] * best_L[j] * best_L[j];
  if (sll > 0) consider((float)(sxl / sll));
}

// ---- Q4_1 / Q5_1: x = q * d + m, q in 0..nmax --------------------------------------------------
void ref_affine(const float* x, int nmax, int* L, float* d_out, float* m_out) {
  float mn = x[0], mx = x[0];
  for (int j = 1; j < QK; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
  const float d = (mx - mn) / (float)nmax, id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < QK; ++j) L[j] = std::min(nmax, (int)((x[j] - mn) * id + 0.5f));
  *d_out = round_fp16(d);
  *m_out = round_fp16(mn);
}

// Affine (d > 0, offset m) search over n values, codes 0..nmax. fp16: d and m rounded as Q4_1
// stores them (else left exact: K-quant sub-block scales are requantized afterwards).
// nonpos_offset: m <= 0 (K-quants store -m as an unsigned 6-bit multiple of dmin).
// On entry best_* hold a starting point (its error is the bar); returns its weighted error.
double search_affine(const float* x, const float* w, int n, int nmax, bool fp16, bool nonpos_offset,
                     int* best_L, float* best_d, float* best_m) {
  double best = werr(x, w, best_L, *best_d, *best_m, n);
  float mn = x[0], mx = x[0];
  for (int j = 1; j < n; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
  if (nonpos_offset) mn = std::min(mn, 0.0f);
  const float r = mx - mn;
  if (r <= 0) return best;
  auto st = [fp16](float v) { return fp16 ? round_fp16(v) : v; };
  int L[QK];
  auto evaluate = [&](float d, float m) {
    const float d16 = st(d), m16 = st(m);
    if (d16 <= 0 || !std::isfinite(d16) || !std::isfinite(m16)) return;
    const float id = 1.0f / d16;
    for (int j = 0; j < n; ++j) L[j] = std::clamp((int)rnd((x[j] - m16) * id), 0, nmax);
    const double e = werr(x, w, L, d16, m16, n);
    if (e < best) best = e, *best_d = d16, *best_m = m16, std::copy(L, L + n, best_L);
  };
  // weighted least squares of (d, m) for fixed codes (m clamped to <= 0 where required)
  auto refit = [&](const int* C, float* d, float* m) {
    double sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
    for (int j = 0; j < n; ++j) {
      sw += w[j], sl += (double)w[j] * C[j], sll += (double)w[j] * C[j] * C[j];
      sx += (double)w[j] * x[j], sxl += (double)w[j] * x[j] * C[j];
    }
    const double det = sw * sll - sl * sl;
    if (det <= 1e-30 * std::max(1.0, sw * sll)) return false;
    *d = (float)((sw * sxl - sl * sx) / det);
    *m = (float)((sll * sx - sl * sxl) / det);
    if (nonpos_offset && *m > 0) {
      *m = 0;
      if (!(sll > 0)) return false;
      *d = (float)(sxl / sll);
    }
    return *d > 0;
  };
  int C[QK];
  for (int a = 0; a <= 5; ++a)
    for (int b = 0; b <= 5; ++b) {
      const float lo = mn + 0.02f * a * r, hi = mx - 0.02f * b * r;
      if (hi <= lo) continue;
      const float d = (hi - lo) / (float)nmax, id = 1.0f / d;
      for (int j = 0; j < n; ++j) C[j] = std::clamp((int)rnd((x[j] - lo) * id), 0, nmax);
      float d2, m2;
      if (refit(C, &d2, &m2)) evaluate(d2, m2);
    }
  float d2, m2;
  std::copy(best_L, best_L + n, C);
  if (refit(C, &d2, &m2)) evaluate(d2, m2);
  return best;
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

// 32 codes -> 16 bytes: low nibbles codes 0..15, high nibbles 16..31 (Q4_0/1, Q5_0/1).
void pack_q4(const int* q, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
}
// bit 4 of 32 codes -> qh (bit j of the little-endian word = code j).
void pack_qh(const int* q, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < 32; ++j) h |= (uint32_t)((q[j] >> 4) & 1) << j;
  std::memcpy(qh, &h, 4);
}

// One block of t in ggml's layout from its codes L (Q4_0: -8..7, Q5_0: -16..15, Q4_1: 0..15,
// Q5_1: 0..31, Q8_0: -127..127) and its scale d (and offset m for Q4_1/Q5_1), fp16-representable.
void store_block(GGMLType t, const int* L, float d, float m, uint8_t* out) {
  int q[QK];
  const int h = t == GGMLType::Q4_0 ? 8 : t == GGMLType::Q5_0 ? 16 : 0;
  for (int j = 0; j < QK; ++j) q[j] = L[j] + h;
  if (t == GGMLType::Q4_0) {
    Q40 b;
    b.d = f32_to_fp16(d);
    pack_q4(q, b.qs);
    std::memcpy(out, &b, sizeof b);
  } else if (t == GGMLType::Q4_1) {
    Q41 b;
    b.d = f32_to_fp16(d), b.m = f32_to_fp16(m);
    pack_q4(q, b.qs);
    std::memcpy(out, &b, sizeof b);
  } else if (t == GGMLType::Q5_0) {
    Q50 b;
    b.d = f32_to_fp16(d);
    pack_qh(q, b.qh);
    pack_q4(q, b.qs);
    std::memcpy(out, &b, sizeof b);
  } else if (t == GGMLType::Q5_1) {
    Q51 b;
    b.d = f32_to_fp16(d), b.m = f32_to_fp16(m);
    pack_qh(q, b.qh);
    pack_q4(q, b.qs);
    std::memcpy(out, &b, sizeof b);
  } else {  // Q8_0
    Q80 b;
    b.d = f32_to_fp16(d);
    for (int j = 0; j < QK; ++j) b.qs[j] = (int8_t)L[j];
    std::memcpy(out, &b, sizeof b);
  }
}

// ---- Q4_K / Q5_K: 8 sub-blocks of 32, x = (d * sc_j) * q - (dmin * m_j), q in 0..nmax, --------
// sc_j, m_j 6-bit unsigned, d and dmin fp16. Each sub-block's (scale, -offset) pair is searched
// as Q4_1's is (offset <= 0), the 8 pairs are put on the 6-bit grids of d / dmin, and each
// sub-block then tries the neighbouring grid points with its codes re-rounded, keeping the pair
// of least weighted error -- always measured with the products the dequantizer forms.

// Codes and weighted error of sub-block x[0..32) for D = d*sc, M = dmin*m (as dequantized).
double kq_codes(const float* x, const float* w, int nmax, float D, float M, int* L) {
  double e = 0;
  const float iD = D > 0 ? 1.0f / D : 0.0f;
  for (int j = 0; j < QK; ++j) {
    L[j] = D > 0 ? std::clamp((int)rnd((x[j] + M) * iD), 0, nmax) : 0;
    const double r = (double)x[j] - ((double)(D * (float)L[j]) - M);
    e += w[j] * r * r;
  }
  return e;
}

// 6-bit scale and min of sub-block j into the 12 packed bytes (inverse of get_scale_min_k4).
void pack_scale_min_k4(const int* sc, const int* m, uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 4; ++j) {
    s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

void quantize_kq(bool q5, const float* x, const float* w, uint8_t* out) {
  const int nmax = q5 ? 31 : 15;
  constexpr int NS = QKK / QK;
  float s[NS], mneg[NS];
  int L[QKK];
  for (int j = 0; j < NS; ++j) {
    const float* xs = x + QK * j;
    const float* ws = w + QK * j;
    // start: min(x, 0) .. max(x) over the code range (llama.cpp's starting point)
    float mn = 0, mx = xs[0];
    for (int i = 0; i < QK; ++i) mn = std::min(mn, xs[i]), mx = std::max(mx, xs[i]);
    float d = mx > mn ? (mx - mn) / (float)nmax : 0.0f, m = mn;
    int* Ls = L + QK * j;
    for (int i = 0; i < QK; ++i)
      Ls[i] = d > 0 ? std::clamp((int)rnd((xs[i] - mn) / d), 0, nmax) : 0;
    search_affine(xs, ws, QK, nmax, false, true, Ls, &d, &m);
    s[j] = std::max(d, 0.0f);
    mneg[j] = std::max(-m, 0.0f);
  }
  const float smax = *std::max_element(s, s + NS), mmax = *std::max_element(mneg, mneg + NS);
  const float d = round_fp16(smax / 63.0f), dmin = round_fp16(mmax / 63.0f);
  int sc[NS], mq[NS];
  int T[QK];
  for (int j = 0; j < NS; ++j) {
    const float* xs = x + QK * j;
    const float* ws = w + QK * j;
    const int sc0 = d > 0 ? std::clamp((int)rnd(s[j] / d), 0, 63) : 0;
    const int m0 = dmin > 0 ? std::clamp((int)rnd(mneg[j] / dmin), 0, 63) : 0;
    double best = INFINITY;
    for (int a = std::max(0, sc0 - 1); a <= std::min(63, sc0 + 1); ++a)
      for (int b = std::max(0, m0 - 1); b <= std::min(63, m0 + 1); ++b) {
        const double e = kq_codes(xs, ws, nmax, d * (float)a, dmin * (float)b, T);
        if (e < best) best = e, sc[j] = a, mq[j] = b, std::copy(T, T + QK, L + QK * j);
      }
  }
  uint8_t scales[12];
  pack_scale_min_k4(sc, mq, scales);
  uint8_t qs[128], qh[32] = {};
  for (int c = 0; c < 4; ++c)  // 64 values per 32 bytes: sub-block 2c low nibbles, 2c+1 high
    for (int l = 0; l < 32; ++l) {
      const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
      qs[32 * c + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
      qh[l] |= (uint8_t)((((lo >> 4) & 1) << (2 * c)) | (((hi >> 4) & 1) << (2 * c + 1)));
    }
  if (q5) {
    Q5K b;
    b.d = f32_to_fp16(d), b.dmin = f32_to_fp16(dmin);
    std::memcpy(b.scales, scales, 12);
    std::memcpy(b.qh, qh, 32);
    std::memcpy(b.qs, qs, 128);
    std::memcpy(out, &b, sizeof b);
  } else {
    Q4K b;
    b.d = f32_to_fp16(d), b.dmin = f32_to_fp16(dmin);
    std::memcpy(b.scales, scales, 12);
    std::memcpy(b.qs, qs, 128);
    std::memcpy(out, &b, sizeof b);
  }
}

// ---- Q6_K: 16 sub-blocks of 16, x = (d * sc_j) * (q - 32), q in 0..63, sc_j int8, d fp16 ------
// Each sub-block's scale is searched symmetrically (codes -32..31), the 16 scales are put on
// the int8 grid of d (the scale of largest magnitude at -128, as llama.cpp does), and each
// sub-block tries the neighbouring grid points with its codes re-rounded.
void quantize_q6k(const float* x, const float* w, uint8_t* out) {
  constexpr int NS = QKK / 16;
  float s[NS];
  int L[QKK], R[16];
  for (int j = 0; j < NS; ++j) {
    const float* xs = x + 16 * j;
    const float mx = signed_max(xs, 16);
    const float rd = mx / -32.0f, id = rd != 0 ? 1.0f / rd : 0.0f;
    for (int i = 0; i < 16; ++i) R[i] = std::clamp((int)rnd(xs[i] * id), -32, 31);
    search_sym(xs, w + 16 * j, 16, -32, 31, 32.0f, L + 16 * j, &s[j], R, round_fp16(rd));
  }
  float smax = 0;
  for (int j = 0; j < NS; ++j)
    if (std::fabs(s[j]) > std::fabs(smax)) smax = s[j];
  const float d = round_fp16(smax / -128.0f);
  int sc[NS], T[16];
  for (int j = 0; j < NS; ++j) {
    const float* xs = x + 16 * j;
    const float* ws = w + 16 * j;
    const int s0 = d != 0 ? std::clamp((int)rnd(s[j] / d), -128, 127) : 0;
    double best = INFINITY;
    for (int a = std::max(-128, s0 - 1); a <= std::min(127, s0 + 1); ++a) {
      const float D = d * (float)a, iD = D != 0 ? 1.0f / D : 0.0f;
      double e = 0;
      for (int i = 0; i < 16; ++i) {
        T[i] = D != 0 ? std::clamp((int)rnd(xs[i] * iD), -32, 31) : 0;
        const double r = (double)xs[i] - (double)(D * (float)T[i]);
        e += ws[i] * r * r;
      }
      if (e < best) best = e, sc[j] = a, std::copy(T, T + 16, L + 16 * j);
    }
  }
  Q6K b;
  for (int h = 0; h < 2; ++h)  // 128 values per half: 64 ql bytes, 32 qh bytes
    for (int l = 0; l < 32; ++l) {
      const int* v = L + 128 * h;
      const int q1 = v[l] + 32, q2 = v[l + 32] + 32, q3 = v[l + 64] + 32, q4 = v[l + 96] + 32;
      b.ql[64 * h + l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
      b.ql[64 * h + l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
      b.qh[32 * h + l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  for (int j = 0; j < NS; ++j) b.scales[j] = (int8_t)sc[j];
  b.d = f32_to_fp16(d);
  std::memcpy(out, &b, sizeof b);
}

bool is_k_type(GGMLType t) {
  return t == GGMLType::Q4_K || t == GGMLType::Q5_K || t == GGMLType::Q6_K;
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
  return t == GGMLType::Q8_0 || t == GGMLType::Q4_0 || t == GGMLType::Q4_1 ||
         t == GGMLType::Q5_0 || t == GGMLType::Q5_1 || is_k_type(t);
}

int ggml_block_elems(GGMLType t) {
  if (is_k_type(t)) return QKK;
  return ggml_is_block_type(t) ? QK : 1;
}

void quantize_block_reference(GGMLType t, const float* x, uint8_t* out) {
  int L[QK];
  float d = 0, m = 0;
  if (t == GGMLType::Q4_0) ref_sym(x, 8, L, &d);
  else if (t == GGMLType::Q5_0) ref_sym(x, 16, L, &d);
  else if (t == GGMLType::Q4_1) ref_affine(x, 15, L, &d, &m);
  else if (t == GGMLType::Q5_1) ref_affine(x, 31, L, &d, &m);
  else if (t == GGMLType::Q8_0) ref_q8_0(x, L, &d);
  else return;
  store_block(t, L, d, m, out);
}

Status quantize_row_ggml(GGMLType t, const float* x, int64_t n, const float* imp, uint8_t* out) {
  if (!ggml_can_quantize(t))
    return make_error("GGUF export: type ", ggml_type_name((uint32_t)t),
                      " is not written (supported: F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, "
                      "Q5_K, Q6_K)");
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
  const int be = ggml_block_elems(t);
  if (n % be != 0)
    return make_error("GGUF export: row length ", n, " is not a multiple of ",
                      ggml_type_name((uint32_t)t), "'s block of ", be);
  const size_t bb = ggml_row_bytes(t, be);
  float w[QKK];
  int L[QK], R[QK];
  for (int64_t b0 = 0; b0 < n; b0 += be) {
    const float* xb = x + b0;
    double sw = 0;
    for (int j = 0; j < be; ++j) {
      w[j] = imp ? std::max(0.0f, imp[b0 + j]) : 1.0f;
      sw += w[j];
    }
    if (!(sw > 0)) std::fill(w, w + be, 1.0f);  // channels never active: plain squared error
    uint8_t* ob = out + (size_t)(b0 / be) * bb;
    if (t == GGMLType::Q4_K || t == GGMLType::Q5_K) {
      quantize_kq(t == GGMLType::Q5_K, xb, w, ob);
      continue;
    }
    if (t == GGMLType::Q6_K) {
      quantize_q6k(xb, w, ob);
      continue;
    }
    float d = 0, m = 0;
    if (t == GGMLType::Q4_1 || t == GGMLType::Q5_1) {
      const int nmax = t == GGMLType::Q4_1 ? 15 : 31;
      ref_affine(xb, nmax, L, &d, &m);
      search_affine(xb, w, QK, nmax, true, false, L, &d, &m);
    } else {
      const int h = t == GGMLType::Q4_0 ? 8 : t == GGMLType::Q5_0 ? 16 : 0;
      float rd;
      if (h) ref_sym(xb, h, R, &rd);
      else ref_q8_0(xb, R, &rd);
      search_sym(xb, w, QK, h ? -h : -127, h ? h - 1 : 127, h ? (float)h : 127.0f, L, &d, R, rd);
    }
    store_block(t, L, d, m, ob);
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
