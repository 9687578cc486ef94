// Portable build of the vector math (kernels/vmath.h): plain scalar loops.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/vmath.h"

namespace awq {
namespace {

float exp_poly(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + (r + 1.0f);
  const int32_t e = ((int32_t)n + 127) << 23;
  return p * std::bit_cast<float>(e);
}

void softmax_row_ref(float* row, int n_vis, int n_total) {
  float mx = -INFINITY;
  for (int j = 0; j < n_vis; ++j) mx = std::max(mx, row[j]);
  float sum = 0.0f;
  for (int j = 0; j < n_vis; ++j) {
    row[j] = exp_poly(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (int j = 0; j < n_vis; ++j) row[j] *= inv;
  for (int j = n_vis; j < n_total; ++j) row[j] = 0.0f;
}

void silu_mul_ref(const float* g, float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) u[i] *= g[i] / (1.0f + exp_poly(-g[i]));
}

double log_sum_exp_ref(const float* x, int n, float* max_out) {
  float mx = -INFINITY;
  for (int j = 0; j < n; ++j) mx = std::max(mx, x[j]);
  double s = 0.0;
  for (int j = 0; j < n; ++j) s += exp_poly(x[j] - mx);
  if (max_out) *max_out = mx;
  return (double)mx + std::log(s);
}

}  // namespace

float vexp(float x) { return exp_poly(x); }

namespace detail {
VmathKernels vmath_kernels_ref() { return {softmax_row_ref, silu_mul_ref, log_sum_exp_ref}; }
}  // namespace detail

}  // namespace awq
