// Streaming-read memory bandwidth, the ceiling for the weight-streaming (decode) kernels.
#pragma once
#include <cstddef>

namespace awq {

// Reads a `bytes` buffer (rounded down to 64 B, use several times the last-level cache) with
// `threads` threads (<= 0: all), best of several passes; returns GB/s (1e9 bytes/s).
double measure_memory_bandwidth_gbs(size_t bytes, int threads);

}  // namespace awq
