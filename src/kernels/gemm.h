// fp32 GEMM helpers for the unquantized parts of the forward pass (OpenBLAS underneath).
#pragma once

namespace awq {

// C[M][N] = A[M][K] · B[N][K]^T + beta * C   (all dense row-major; B is a torch-style weight).
void sgemm_nt(int M, int N, int K, const float* A, const float* B, float* C, float beta = 0.0f);

}  // namespace awq
