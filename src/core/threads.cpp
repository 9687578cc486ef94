#include "core/threads.h"

#include <omp.h>

#include <thread>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace awq {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_max_threads();
  if (n <= 0) n = (int)std::thread::hardware_concurrency();
  omp_set_num_threads(n);
  if (openblas_set_num_threads) openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace awq
