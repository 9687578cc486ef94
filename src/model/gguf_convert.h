// GGUF (every family with a GGUF name in model/arch.h: llama, qwen2, qwen3, gemma3) ->
// Hugging Face model directory:
// config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json.
// The directory is built as out_dir + ".tmp-<pid>" and renamed to out_dir when complete.
#pragma once
#include <string>

#include "core/status.h"
#include "io/gguf.h"
#include "io/safetensors.h"

namespace awq {

struct ConvertOptions {
  DType dtype = DType::F32;  // F32, F16 or BF16 for every tensor of model.safetensors
  bool progress = true;      // a line per tensor on stderr
  size_t max_shard_bytes = size_t(2) << 30;
};

Status convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir,
                          const ConvertOptions& opts = {});

struct Architecture;
// HF name of a GGUF tensor of architecture `a`; empty when it has no HF counterpart.
Expected<std::string> hf_tensor_name(const Architecture& a, const std::string& gguf_name);
// HF name for a llama GGUF tensor name ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.
// q_proj.weight"); empty when the tensor has no HF counterpart (rope_freqs.weight).
Expected<std::string> llama_hf_tensor_name(const std::string& gguf_name);

// Undo llama.cpp's RoPE row permutation of q/k weights in place. w is row-major
// [rows][cols], rows = n_heads * head_dim. Within a head, GGUF row 2*i + j holds HF row
// j * (head_dim / 2) + i (the mapping of Transformers' reverse_permute).
Status unpermute_qk_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads);

// The JSON documents written beside model.safetensors (exposed for tests).
Expected<std::string> build_config_json(const GGUFFile& g, DType dtype);
Expected<std::string> build_tokenizer_json(const GGUFFile& g);
Expected<std::string> build_tokenizer_config_json(const GGUFFile& g);
Expected<std::string> build_generation_config_json(const GGUFFile& g);

}  // namespace awq
