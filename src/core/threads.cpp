#include "core/threads.h"

#include <omp.h>

#include <unistd.h>

#include <cstdlib>
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

void apply_default_omp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (const char* e = std::getenv("AWQ_NO_REEXEC"); e && e[0] == '1') return;
  if (setenv("GOMP_SPINCOUNT", kDefaultSpinCount, 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("GOMP_SPINCOUNT");  // exec failed: run as we are
}

}  // namespace awq
