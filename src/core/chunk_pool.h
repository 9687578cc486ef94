// A fork/join for the decode loops that does not wait for a thread that never showed up.
//
// parallel_chunks(n, nt, fn) runs fn(c) for c in [0, n) on the calling thread and up to nt - 1
// pool workers. Chunks are claimed one at a time from a shared counter; the caller returns as
// soon as every chunk is done, so a worker that is descheduled (a shared machine: another
// process holds its core) before it claims anything costs nothing: the caller does its chunks.
// With OpenMP's `parallel for` the caller waits at the region's end for every thread of the
// team, including one that has not started yet, which on a loaded 2-core machine costs a time
// slice per region (hundreds of regions per decode step).
// Workers spin (~1 ms) for the next job, then sleep on a futex (std::atomic::wait).
// Which thread runs which chunk is unspecified: fn must write disjoint outputs per chunk.
// Called inside an OpenMP parallel region, from fn itself, or while another thread's call holds
// the pool, it runs every chunk on the calling thread (as a nested OpenMP loop would).
// Opt-in: AWQ_FORK=pool. By default parallel_chunks is OpenMP's `parallel for schedule(dynamic,
// 1)`: in `awq serve` at 1 stream (load ~10, 3 paired runs) the pool was 1.3-1.4x slower
// (25.5/34.3/27.8 vs 32.8/46.9/38.7 tok/s), while in `awq bench` at load 13-14 it was much
// faster (tg b=1 28 vs 4 tok/s). Needs a quiet-machine measurement before it becomes a default.
#pragma once
#include <functional>

namespace awq {
void parallel_chunks(int n_chunks, int n_threads, const std::function<void(int)>& fn);
}  // namespace awq
