#include "kernels/gemm.h"

#include <cblas.h>

namespace awq {

void sgemm_nt(int M, int N, int K, const float* A, const float* B, float* C, float beta) {
  if (M <= 0 || N <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, beta, C, N);
}

}  // namespace awq
