// Thread count: one setting for OpenMP loops and the BLAS library.
#pragma once

namespace awq {
// n <= 0: use all hardware threads (or OMP_NUM_THREADS when set).
void set_num_threads(int n);
int num_threads();
}  // namespace awq
