// libFuzzer target: GGUFFile::parse on arbitrary bytes; for files that parse, read every
// metadata getter and dequantize every (small) tensor, so ASan checks all data views.
#include <cstddef>
#include <cstdint>

#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = awq::GGUFFile::parse(data, size, "fuzz");
  if (!g.ok()) return 0;
  for (const auto& [key, v] : g->metadata()) {
    (void)g->get_string(key);
    (void)g->get_u32(key);
    (void)g->get_i64(key);
    (void)g->get_f32(key);
    (void)g->get_bool(key);
    (void)g->get_string_array(key);
    (void)g->get_int_array(key);
    (void)g->get_f32_array(key);
  }
  for (const auto& t : g->tensors())
    if (t.numel() <= (1u << 20)) (void)g->dequantize(t);
  return 0;
}
