// Scalar dequantization of ggml blocks. Block layouts follow ggml-common.h and are pinned
// with static_assert; products are evaluated in the same order as ggml's reference
// (and gguf-py's numpy code) so results are bit-exact.
#include "io/gguf_dequant.h"

#include <cstring>

#include "core/half.h"
#include "io/gguf.h"

namespace awq {

namespace {
constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

#pragma pack(push, 1)
struct block_q4_0 {  // 32 weights: w = (q - 8) * d
  uint16_t d;
  uint8_t qs[QK4_0 / 2];  // low nibbles: weights 0..15, high nibbles: 16..31
};
struct block_q4_1 {  // w = q * d + m
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
};
struct block_q5_0 {  // w = (q - 16) * d, q = nibble | (bit of qh) << 4
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
struct block_q5_1 {  // w = q * d + m
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
struct block_q8_0 {  // w = q * d
  uint16_t d;
  int8_t qs[QK8_0];
};
struct block_q4_K {  // 8 sub-blocks of 32: w = d*sc*q - dmin*m, 6-bit sc/m packed in scales
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
struct block_q5_K {
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
struct block_q6_K {  // 16 sub-blocks of 16: w = d * sc * (q - 32), q 6 bits
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
#pragma pack(pop)
static_assert(sizeof(block_q4_0) == 18);
static_assert(sizeof(block_q4_1) == 20);
static_assert(sizeof(block_q5_0) == 22);
static_assert(sizeof(block_q5_1) == 24);
static_assert(sizeof(block_q8_0) == 34);
static_assert(sizeof(block_q4_K) == 144);
static_assert(sizeof(block_q5_K) == 176);
static_assert(sizeof(block_q6_K) == 210);

template <class B>
B load(const uint8_t* p) {
  B b;
  std::memcpy(&b, p, sizeof(B));
  return b;
}

float h2f(uint16_t h) { return fp16_to_f32(h); }

void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void deq_q4_0(const uint8_t* p, float* y) {
  const auto b = load<block_q4_0>(p);
  const float d = h2f(b.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = float((b.qs[j] & 0xF) - 8) * d;
    y[j + 16] = float((b.qs[j] >> 4) - 8) * d;
  }
}
void deq_q4_1(const uint8_t* p, float* y) {
  const auto b = load<block_q4_1>(p);
  const float d = h2f(b.d), m = h2f(b.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = float(b.qs[j] & 0xF) * d + m;
    y[j + 16] = float(b.qs[j] >> 4) * d + m;
  }
}
void deq_q5_0(const uint8_t* p, float* y) {
  const auto b = load<block_q5_0>(p);
  const float d = h2f(b.d);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = float(((b.qs[j] & 0xF) | h0) - 16) * d;
    y[j + 16] = float(((b.qs[j] >> 4) | h1) - 16) * d;
  }
}
void deq_q5_1(const uint8_t* p, float* y) {
  const auto b = load<block_q5_1>(p);
  const float d = h2f(b.d), m = h2f(b.m);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = float((b.qs[j] & 0xF) | h0) * d + m;
    y[j + 16] = float((b.qs[j] >> 4) | h1) * d + m;
  }
}
void deq_q8_0(const uint8_t* p, float* y) {
  const auto b = load<block_q8_0>(p);
  const float d = h2f(b.d);
  for (int j = 0; j < 32; ++j) y[j] = float(b.qs[j]) * d;
}
void deq_q4_K(const uint8_t* p, float* y) {
  const auto b = load<block_q4_K>(p);
  const float d = h2f(b.d), dmin = h2f(b.dmin);
  const uint8_t* q = b.qs;
  for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
    uint8_t sc, m;
    get_scale_min_k4(is, b.scales, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    get_scale_min_k4(is + 1, b.scales, &sc, &m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
  }
}
void deq_q5_K(const uint8_t* p, float* y) {
  const auto b = load<block_q5_K>(p);
  const float d = h2f(b.d), dmin = h2f(b.dmin);
  const uint8_t* ql = b.qs;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
    uint8_t sc, m;
    get_scale_min_k4(is, b.scales, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    get_scale_min_k4(is + 1, b.scales, &sc, &m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + (b.qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0)) - m2;
  }
}
void deq_q6_K(const uint8_t* p, float* y) {
  const auto b = load<block_q6_K>(p);
  const float d = h2f(b.d);
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  const int8_t* sc = b.scales;
  for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * float(sc[is + 0]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
  }
}

using BlockFn = void (*)(const uint8_t*, float*);
struct Kernel {
  GGMLType type;
  int block_elems;
  int block_bytes;
  BlockFn fn;
};
constexpr Kernel kKernels[] = {
    {GGMLType::Q4_0, QK4_0, sizeof(block_q4_0), deq_q4_0},
    {GGMLType::Q4_1, QK4_1, sizeof(block_q4_1), deq_q4_1},
    {GGMLType::Q5_0, QK5_0, sizeof(block_q5_0), deq_q5_0},
    {GGMLType::Q5_1, QK5_1, sizeof(block_q5_1), deq_q5_1},
    {GGMLType::Q8_0, QK8_0, sizeof(block_q8_0), deq_q8_0},
    {GGMLType::Q4_K, QK_K, sizeof(block_q4_K), deq_q4_K},
    {GGMLType::Q5_K, QK_K, sizeof(block_q5_K), deq_q5_K},
    {GGMLType::Q6_K, QK_K, sizeof(block_q6_K), deq_q6_K},
};
}  // namespace

bool ggml_can_dequantize(uint32_t type) {
  if (type == uint32_t(GGMLType::F32) || type == uint32_t(GGMLType::F16) ||
      type == uint32_t(GGMLType::BF16))
    return true;
  for (const auto& k : kKernels)
    if (uint32_t(k.type) == type) return true;
  return false;
}

Status dequantize_ggml(uint32_t type, const uint8_t* src, size_t nbytes, float* dst, size_t n,
                       const std::string& what) {
  auto need = [&](size_t bytes) -> Status {
    if (bytes != nbytes)
      return make_error(what, ": ", ggml_type_name(type), " with ", n, " elements needs ", bytes,
                        " bytes, got ", nbytes);
    return Status::Ok();
  };
  switch (GGMLType(type)) {
    case GGMLType::F32:
      AWQ_TRY(need(n * 4));
      if (n) std::memcpy(dst, src, n * 4);
      return Status::Ok();
    case GGMLType::F16:
    case GGMLType::BF16:
      AWQ_TRY(need(n * 2));
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = GGMLType(type) == GGMLType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
      }
      return Status::Ok();
    default:
      break;
  }
  for (const auto& k : kKernels) {
    if (uint32_t(k.type) != type) continue;
    if (n % size_t(k.block_elems) != 0)
      return make_error(what, ": ", n, " elements is not a multiple of the ",
                        ggml_type_name(type), " block size ", k.block_elems);
    const size_t nb = n / size_t(k.block_elems);
    AWQ_TRY(need(nb * size_t(k.block_bytes)));
    for (size_t i = 0; i < nb; ++i)
      k.fn(src + i * size_t(k.block_bytes), dst + i * size_t(k.block_elems));
    return Status::Ok();
  }
  return make_error(what, ": ggml type ", ggml_type_name(type),
                    " cannot be dequantized (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, "
                    "Q5_1, Q4_K, Q5_K, Q6_K)");
}

}  // namespace awq
