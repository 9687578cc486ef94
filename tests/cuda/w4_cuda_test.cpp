// CUDA W4A16 and element-wise kernels against CPU references (double precision from the codes /
// the fp16 inputs). Skipped when no CUDA device is present.
#include "kernels/cuda/w4_cuda.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/half.h"

namespace awq::cuda {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount failed or 0)"

constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

template <class T>
struct DeviceBuf {
  T* p = nullptr;
  explicit DeviceBuf(const std::vector<T>& h) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), h.size() * sizeof(T) + 1), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  explicit DeviceBuf(size_t n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T) + 1), cudaSuccess);
  }
  ~DeviceBuf() { cudaFree(p); }
  std::vector<T> get(size_t n) const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

struct Layer {
  int K, N, G;
  std::vector<uint8_t> q, z;  // [N][K], [N][K/G]
  std::vector<float> s;       // [N][K/G], fp16 values
  std::vector<int32_t> qweight, qzeros;
  std::vector<uint16_t> scales;
  float w(int n, int k) const {
    const int g = k / G, ng = K / G;
    return ((float)q[(size_t)n * K + k] - z[(size_t)n * ng + g]) * s[(size_t)n * ng + g];
  }
};

Layer make_layer(int K, int N, int group_size, uint32_t seed) {
  Layer L{K, N, group_size == -1 ? K : group_size, {}, {}, {}, {}, {}, {}};
  const int ng = K / L.G, nw = N / 8;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 15);
  std::uniform_real_distribution<float> sc(1e-3f, 2e-2f);
  L.q.resize((size_t)N * K);
  for (auto& v : L.q) v = (uint8_t)code(rng);
  L.z.resize((size_t)N * ng);
  L.s.resize(L.z.size());
  for (auto& v : L.z) v = (uint8_t)code(rng);
  for (auto& v : L.s) v = round_fp16(sc(rng));
  L.qweight.assign((size_t)K * nw, 0);
  L.qzeros.assign((size_t)ng * nw, 0);
  L.scales.assign((size_t)ng * N, 0);
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < nw; ++j) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i)
        word |= (uint32_t)L.q[(size_t)(8 * j + kOrder[i]) * K + k] << (4 * i);
      L.qweight[(size_t)k * nw + j] = (int32_t)word;
    }
  for (int g = 0; g < ng; ++g) {
    for (int j = 0; j < nw; ++j) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i)
        word |= (uint32_t)L.z[(size_t)(8 * j + kOrder[i]) * ng + g] << (4 * i);
      L.qzeros[(size_t)g * nw + j] = (int32_t)word;
    }
    for (int n = 0; n < N; ++n) L.scales[(size_t)g * N + n] = f32_to_fp16(L.s[(size_t)n * ng + g]);
  }
  return L;
}

std::vector<uint16_t> random_half(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<uint16_t> v(n);
  for (auto& e : v) e = f32_to_fp16(u(rng));
  return v;
}

// Check y (fp16) against the double reference: fp16 weights in shared memory (GEMM) round each
// weight by 2^-11 relative; fp32 accumulation; fp16 output rounds by 2^-11.
void check_matmul(const Layer& L, const std::vector<uint16_t>& x, int M,
                  const std::vector<uint16_t>& bias, const std::vector<uint16_t>& y,
                  const char* what) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < L.N; ++n) {
      double ref = fp16_to_f32(bias[n]), mag = std::fabs(ref);
      for (int k = 0; k < L.K; ++k) {
        const double t = (double)fp16_to_f32(x[(size_t)m * L.K + k]) * L.w(n, k);
        ref += t;
        mag += std::fabs(t);
      }
      const double tol =
          mag * (std::ldexp(1.0, -10) + (L.K + 8) * 1.2e-7) + std::fabs(ref) * std::ldexp(1.0, -10);
      ASSERT_NEAR(fp16_to_f32(y[(size_t)m * L.N + n]), ref, tol)
          << what << " K=" << L.K << " N=" << L.N << " G=" << L.G << " M=" << M << " m=" << m
          << " n=" << n;
    }
}

struct Shape {
  int K, N, G;
};
const Shape kShapes[] = {{384, 8, 128},   {640, 72, 32}, {576, 200, 64},
                         {1536, 24, 128}, {200, 24, -1}, {4096, 264, 128}};

TEST(CudaW4, GemvMatchesReference) {
  SKIP_WITHOUT_GPU();
  for (const Shape& sh : kShapes) {
    const Layer L = make_layer(sh.K, sh.N, sh.G, 5 + sh.K);
    const W4Device dummy{nullptr, nullptr, nullptr, sh.K, sh.N, sh.G};
    ASSERT_TRUE(w4_shape_supported(dummy));
    DeviceBuf<int32_t> qw(L.qweight), qz(L.qzeros);
    DeviceBuf<uint16_t> sc(L.scales);
    const W4Device w{qw.p, qz.p, sc.p, sh.K, sh.N, sh.G};
    const std::vector<uint16_t> bias = random_half(sh.N, 3);
    DeviceBuf<uint16_t> db(bias);
    for (int M = 1; M <= kGemvMaxBatch; ++M) {
      const std::vector<uint16_t> x = random_half((size_t)M * sh.K, 100 + M);
      DeviceBuf<uint16_t> dx(x), dy((size_t)M * sh.N);
      const size_t ws = w4_gemv_workspace_bytes(w, M);
      DeviceBuf<float> dws(ws / sizeof(float) + 1);
      ASSERT_EQ(w4a16_gemv(w, dx.p, M, dy.p, db.p, dws.p, ws, nullptr), CudaStatus::Ok);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      check_matmul(L, x, M, bias, dy.get((size_t)M * sh.N), "gemv");
    }
  }
}

TEST(CudaW4, GemmMatchesReference) {
  SKIP_WITHOUT_GPU();
  for (const Shape& sh : kShapes) {
    const Layer L = make_layer(sh.K, sh.N, sh.G, 9 + sh.N);
    DeviceBuf<int32_t> qw(L.qweight), qz(L.qzeros);
    DeviceBuf<uint16_t> sc(L.scales);
    const W4Device w{qw.p, qz.p, sc.p, sh.K, sh.N, sh.G};
    const std::vector<uint16_t> bias = random_half(sh.N, 4);
    DeviceBuf<uint16_t> db(bias);
    for (int M : {1, 9, 16, 33, 64, 130}) {
      const std::vector<uint16_t> x = random_half((size_t)M * sh.K, 200 + M);
      DeviceBuf<uint16_t> dx(x), dy((size_t)M * sh.N);
      ASSERT_EQ(w4a16_gemm(w, dx.p, M, dy.p, db.p, nullptr), CudaStatus::Ok);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      check_matmul(L, x, M, bias, dy.get((size_t)M * sh.N), "gemm");
    }
  }
}

TEST(CudaW4, BadArgumentsAreRejected) {
  // Pure argument checks: no device needed.
  W4Device w{nullptr, nullptr, nullptr, 128, 12, 32};
  EXPECT_FALSE(w4_shape_supported(w));  // N % 8
  w.N = 16;
  w.group_size = 48;
  EXPECT_FALSE(w4_shape_supported(w));  // K % G
  w.group_size = 32;
  EXPECT_TRUE(w4_shape_supported(w));
  EXPECT_EQ(w4a16_gemm(w, nullptr, 4, nullptr, nullptr, nullptr), CudaStatus::InvalidArgument);
  EXPECT_EQ(w4a16_gemv(w, nullptr, 9, nullptr, nullptr, nullptr, 0, nullptr),
            CudaStatus::InvalidArgument);
  EXPECT_STRNE(status_string(CudaStatus::InvalidArgument), "");
}

TEST(CudaElementwise, MatchCpu) {
  SKIP_WITHOUT_GPU();
  const int rows = 3, dim = 200;
  const auto x = random_half((size_t)rows * dim, 1), wt = random_half(dim, 2);
  DeviceBuf<uint16_t> dx(x), dw(wt), dout((size_t)rows * dim);
  ASSERT_EQ(rmsnorm_f16(dx.p, dw.p, dout.p, rows, dim, 1e-5f, nullptr), CudaStatus::Ok);
  auto out = dout.get((size_t)rows * dim);
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += std::pow(fp16_to_f32(x[r * dim + i]), 2);
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int i = 0; i < dim; ++i) {
      const double ref = fp16_to_f32(x[r * dim + i]) * inv * fp16_to_f32(wt[i]);
      ASSERT_NEAR(fp16_to_f32(out[r * dim + i]), ref, 2e-3 * std::fabs(ref) + 1e-4);
    }
  }
  // silu * mul and add
  const auto g = random_half(1000, 3, -4, 4), u = random_half(1000, 4);
  DeviceBuf<uint16_t> dg(g), du(u), dr(1000);
  ASSERT_EQ(silu_mul_f16(dg.p, du.p, dr.p, 1000, nullptr), CudaStatus::Ok);
  auto r1 = dr.get(1000);
  for (int i = 0; i < 1000; ++i) {
    const double gv = fp16_to_f32(g[i]);
    const double ref = gv / (1 + std::exp(-gv)) * fp16_to_f32(u[i]);
    ASSERT_NEAR(fp16_to_f32(r1[i]), ref, 2e-3 * std::fabs(ref) + 1e-4);
  }
  ASSERT_EQ(add_f16(dg.p, du.p, dr.p, 1000, nullptr), CudaStatus::Ok);
  auto r2 = dr.get(1000);
  for (int i = 0; i < 1000; ++i) {
    const double ref = (double)fp16_to_f32(g[i]) + fp16_to_f32(u[i]);
    ASSERT_NEAR(fp16_to_f32(r2[i]), ref, 1e-3 * std::fabs(ref) + 1e-4);
  }
  // rope: 2 tokens, 3 heads, head_dim 8
  const int T = 2, H = 3, D = 8;
  const auto rx = random_half(T * H * D, 5);
  const std::vector<int32_t> pos = {0, 7};
  DeviceBuf<uint16_t> drx(rx);
  DeviceBuf<int32_t> dpos(pos);
  ASSERT_EQ(rope_f16(drx.p, dpos.p, T, H, D, 10000.0f, nullptr), CudaStatus::Ok);
  auto ro = drx.get(T * H * D);
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < D / 2; ++i) {
        const double ang = pos[t] * std::pow(10000.0, -2.0 * i / D);
        const size_t b = ((size_t)t * H + h) * D;
        const double a0 = fp16_to_f32(rx[b + i]), a1 = fp16_to_f32(rx[b + i + D / 2]);
        ASSERT_NEAR(fp16_to_f32(ro[b + i]), a0 * std::cos(ang) - a1 * std::sin(ang), 3e-3);
        ASSERT_NEAR(fp16_to_f32(ro[b + i + D / 2]), a1 * std::cos(ang) + a0 * std::sin(ang), 3e-3);
      }
}

TEST(CudaElementwise, AttentionDecodeMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const int n_ctx = 37, H = 4, KVH = 2, D = 64;
  const float scale = 1.0f / 8.0f;
  const auto q = random_half(H * D, 1), kc = random_half((size_t)n_ctx * KVH * D, 2),
             vc = random_half((size_t)n_ctx * KVH * D, 3);
  DeviceBuf<uint16_t> dq(q), dk(kc), dv(vc), dout(H * D);
  ASSERT_EQ(attention_decode_f16(dq.p, dk.p, dv.p, dout.p, n_ctx, H, KVH, D, scale, nullptr),
            CudaStatus::Ok);
  const auto out = dout.get(H * D);
  for (int h = 0; h < H; ++h) {
    const int kvh = h / (H / KVH);
    std::vector<double> sc(n_ctx);
    double mx = -1e30, sum = 0;
    for (int t = 0; t < n_ctx; ++t) {
      double d = 0;
      for (int i = 0; i < D; ++i)
        d += (double)fp16_to_f32(q[h * D + i]) * fp16_to_f32(kc[((size_t)t * KVH + kvh) * D + i]);
      sc[t] = d * scale;
      mx = std::max(mx, sc[t]);
    }
    for (auto& v : sc) sum += (v = std::exp(v - mx));
    for (int i = 0; i < D; ++i) {
      double ref = 0;
      for (int t = 0; t < n_ctx; ++t)
        ref += sc[t] / sum * fp16_to_f32(vc[((size_t)t * KVH + kvh) * D + i]);
      ASSERT_NEAR(fp16_to_f32(out[h * D + i]), ref, 2e-3) << h << "," << i;
    }
  }
}

}  // namespace
}  // namespace awq::cuda
