// Thread count: one setting for OpenMP loops and the BLAS library.
#pragma once

namespace awq {
// n <= 0: use all hardware threads (or OMP_NUM_THREADS when set).
void set_num_threads(int n);
int num_threads();

// A good neighbour on a shared machine (docs/RESULTS.md, "OpenMP wait policy"): libgomp's
// default lets a thread that waits at a barrier spin for up to 300,000 iterations; when another
// process holds a core, the partner it waits for is descheduled and the spinning burns a time
// slice for nothing. Called first in main(): when the user set neither OMP_WAIT_POLICY nor
// GOMP_SPINCOUNT, sets GOMP_SPINCOUNT to kDefaultSpinCount and re-executes the program
// (/proc/self/exe), because libgomp reads its environment when it is loaded, before main.
// Returns only when nothing needs doing (or the exec failed: the program goes on unchanged).
// AWQ_NO_REEXEC=1 disables it.
inline constexpr const char* kDefaultSpinCount = "10000";
void apply_default_omp_wait_policy(char** argv);
}  // namespace awq
