// Streaming writer of AutoAWQ "GEMM" checkpoints (docs/FORMAT.md) and the loader of one
// quantized linear from any AutoAWQ checkpoint.
//
// Writing is crash-safe: everything goes to OUT_DIR.tmp-<pid>; finish() renames it to OUT_DIR in
// one step, so OUT_DIR is either absent (or the old one, with overwrite) or complete. Memory stays
// independent of model size (the SafeTensorsWriter streams tensor bytes to disk as they arrive).
//
// What each QuantConfig writes:
//   w_bit 4, zero_point:  <prefix>.qweight/.qzeros/.scales (+ .bias) and
//                         config.json "quantization_config" {"quant_method": "awq", ...}.
//   anything else (3 or 8 bits, symmetric): AutoAWQ GEMM cannot hold it, so the writer stores
//                         the fake-quantized weights as fp16 <prefix>.weight (a plain fp16 model
//                         every loader reads, weights on the quantization grid up to one fp16
//                         rounding) and describes the quantization under config.json
//                         "awq_cpp_fake_quantization" (NOT "quantization_config", which would make
//                         vLLM/Transformers try AWQ kernels and fail). The CLI can refuse instead:
//                         see awq_gemm_supported().
// With CheckpointFormat::CompressedTensors every config (2..8 bits, zero point or symmetric,
// group or per-channel) is written in compressed-tensors "pack-quantized" layout
// (io/compressed_tensors.h: .weight_packed/.weight_scale/.weight_zero_point/.weight_shape) with
// a compressed-tensors quantization_config (quant_method "compressed-tensors").
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"
#include "quant/group_quant.h"

namespace awq {

// Gguf: one llama.cpp GGUF file, written by quant/gguf_export.h (not by this writer).
enum class CheckpointFormat { AutoAwq, CompressedTensors, Gguf };
// "autoawq" / "compressed-tensors" / "gguf" -> format; an error listing the names otherwise.
Expected<CheckpointFormat> parse_checkpoint_format(const std::string& name);
const char* checkpoint_format_name(CheckpointFormat f);

class AwqCheckpointWriter {
 public:
  // Creates OUT_DIR.tmp-<pid>. Errors: OUT_DIR's parent missing or not writable; OUT_DIR exists
  // and overwrite is false; a stale temp dir cannot be removed.
  static Expected<AwqCheckpointWriter> create(const std::string& out_dir, const QuantConfig& cfg,
                                              bool overwrite,
                                              size_t max_shard_bytes = size_t(2) << 30,
                                              CheckpointFormat format = CheckpointFormat::AutoAwq);
  AwqCheckpointWriter(AwqCheckpointWriter&&) noexcept;
  AwqCheckpointWriter& operator=(AwqCheckpointWriter&&) noexcept;
  AwqCheckpointWriter(const AwqCheckpointWriter&) = delete;
  AwqCheckpointWriter& operator=(const AwqCheckpointWriter&) = delete;
  ~AwqCheckpointWriter();  // abort() unless finish() succeeded

  // prefix e.g. "model.layers.0.self_attn.q_proj". GEMM configs: .qweight int32 [K, N/8],
  // .qzeros int32 [K/G, N/8], .scales fp16 [K/G, N], .bias fp16 [N] when bias != nullptr.
  // Other configs: .weight fp16 [N, K] (dequantized) and .bias. ql must match the writer's config.
  Status add_quantized(const std::string& prefix, const QuantizedLinear& ql, const float* bias);
  // Any unquantized tensor (norms, embeddings, lm_head, modules_to_not_convert), stored fp16.
  Status add_fp16(const std::string& name, const std::vector<int64_t>& shape, const float* data);

  // Flushes the shards, copies tokenizer files and generation_config.json from src_model_dir
  // (skipped when empty), writes config.json (src_config_json_text + quantization_config,
  // torch_dtype float16) and renames the temp dir to OUT_DIR (replacing it with overwrite).
  Status finish(const std::string& src_model_dir, const std::string& src_config_json_text,
                const std::vector<std::string>& modules_to_not_convert);

  // Removes the temp dir and everything in it; the writer can no longer be used. Idempotent.
  // Not async-signal-safe: a SIGINT handler should set a flag that the quantize loop checks,
  // and the loop calls abort() (or simply returns, letting the destructor do it).
  void abort();

  const std::string& out_dir() const { return out_dir_; }
  const std::string& temp_dir() const { return tmp_dir_; }
  const QuantConfig& config() const { return cfg_; }
  CheckpointFormat format() const { return format_; }

 private:
  AwqCheckpointWriter() = default;
  std::string out_dir_, tmp_dir_;
  QuantConfig cfg_;
  CheckpointFormat format_ = CheckpointFormat::AutoAwq;
  bool overwrite_ = false;
  bool done_ = false;  // finished or aborted
  std::unique_ptr<SafeTensorsWriter> st_;
};

// The config.json text written for a checkpoint: src_config_json_text with quantization_config
// (GEMM configs) or awq_cpp_fake_quantization (others) and torch_dtype float16.
// CompressedTensors: a compressed-tensors quantization_config whose "ignore" lists lm_head and
// one "re:" pattern per modules_to_not_convert substring.
Expected<std::string> awq_checkpoint_config_json(const std::string& src_config_json_text,
                                                 const QuantConfig& cfg,
                                                 const std::vector<std::string>& modules_to_not_convert,
                                                 CheckpointFormat format = CheckpointFormat::AutoAwq);

// Loads <prefix>.qweight/.qzeros/.scales of an AutoAWQ GEMM checkpoint. group_size: the
// checkpoint's quantization_config group_size (-1 = per-channel), or 0 to infer it from the
// shape of .scales. Errors name the tensor, expected vs actual dtype/shape.
Expected<QuantizedLinear> load_awq_linear(const SafeTensors& st, const std::string& prefix,
                                          int group_size);

}  // namespace awq
