// `awq convert MODEL.gguf OUT_DIR [--dtype f32|f16|bf16]`: GGUF (llama) -> HF model directory.
#include <memory>

#include "cli/command.h"
#include "core/cancel.h"
#include "io/gguf_convert.h"

namespace {
struct ConvertArgs {
  std::string model, out_dir, dtype = "f32";
};

awq::cli::Register reg("convert", "Convert a llama GGUF file to a Hugging Face model directory",
                       [](CLI::App& sub) -> awq::cli::Runner {
  auto a = std::make_shared<ConvertArgs>();
  sub.add_option("model", a->model, "input .gguf file")->required();
  sub.add_option("out_dir", a->out_dir, "output directory (must not exist or be empty)")
      ->required();
  sub.add_option("--dtype", a->dtype, "dtype of the written tensors")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  return [a]() -> int {
    awq::install_cancel_handlers();
    awq::ConvertOptions o;
    o.dtype = a->dtype == "f16" ? awq::DType::F16 : a->dtype == "bf16" ? awq::DType::BF16
                                                                      : awq::DType::F32;
    awq::Status s = awq::convert_gguf_to_hf(a->model, a->out_dir, o);
    if (!s.ok()) return awq::cli::fail(s.error());
    std::fprintf(stderr, "wrote %s\n", a->out_dir.c_str());
    return 0;
  };
});
}  // namespace
