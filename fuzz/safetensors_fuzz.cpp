// libFuzzer target: parse_safetensors on arbitrary bytes, then touch every view it returns
// (so ASan catches a view that points outside the input).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, std::string> meta;
  auto r = awq::parse_safetensors(data, size, "fuzz", &meta);
  if (!r.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const auto& v : *r) {
    if (v.nbytes) sink = sink ^ v.data[0] ^ v.data[v.nbytes - 1];
    (void)v.numel();
  }
  return 0;
}
