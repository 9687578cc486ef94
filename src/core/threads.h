// Thread count: one setting for OpenMP loops and the BLAS library.
#pragma once

namespace awq {
// n <= 0: use all hardware threads (or OMP_NUM_THREADS when set).
void set_num_threads(int n);
int num_threads();

// A good neighbour on a shared machine (docs/RESULTS.md, "OpenMP wait policy"): libgomp's
// default lets a thread that waits at a barrier spin for up to 300,000 iterations; when another
// process holds a core, the partner it waits for is descheduled and the spinning burns a time
// slice for nothing (measured: 8x the CPU seconds of `awq quantize` with the passive policy).
// Called first in main(): for the throughput commands (quantize, ppl, kl, convert: few, large
// parallel regions, where a futex wake-up costs nothing measurable), when the user set neither
// OMP_WAIT_POLICY nor GOMP_SPINCOUNT, sets OMP_WAIT_POLICY=passive and re-executes the program
// (/proc/self/exe), because libgomp reads its environment when it is loaded, before main.
// Decoding commands (generate, chat, bench, serve) keep libgomp's default: batch-1 decode has
// hundreds of tiny parallel regions per token and its quiet-machine speed must not change.
// Returns only when nothing needs doing (or the exec failed: the program goes on unchanged).
// AWQ_NO_REEXEC=1 disables it.
void apply_default_omp_wait_policy(int argc, char** argv);
}  // namespace awq
