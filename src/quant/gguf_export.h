// `awq quantize --format gguf`: the AWQ-transformed model (scales folded into the previous ops,
// clipping applied) as one GGUF file that llama.cpp loads, with llama.cpp's tensor names and
// metadata, the tokenizer and chat template of the source directory.
//
// Families: those whose description names a GGUF architecture and which llama.cpp reads with
// this metadata (llama, qwen2, qwen3). Refused with a message naming the reason: Gemma (its
// SentencePiece vocabulary and 1 + w norms are not written yet), MoE, sliding windows,
// rope_scaling.
//
// Tensor types: what llama.cpp's llama-quantize (llama_tensor_get_type, llama-cpp-python 0.3.36's
// vendored llama.cpp) gives each tensor for the same target, so that a file of ours and one of
// llama-quantize's differ only in how each block was rounded:
//   block linears        the target's type for the tensor (the _M / _S mixtures raise attn_v and
//                        ffn_down in some layers; Q4_0/Q5_0 with activation statistics give the
//                        first n_layer/8 ffn_down Q4_1/Q5_1, as llama-quantize does with an
//                        imatrix), quantized row by row (quant/ggml_quant.h) with the AWQ
//                        activation statistics as importance (none for RTN);
//   token_embd (untied)  the target's base type, no importance;
//   output / tied token_embd: Q6_K (Q8_0 for a Q8_0 target or when the row length is not a
//                        multiple of the base type's block);
//   then llama.cpp's fallback for rows a 256-block type does not fit: Q4_K -> Q5_0,
//   Q5_K -> Q5_1, Q6_K -> Q8_0 (F16 if even 32 does not divide), each one noted in the log;
//   norms, biases        F32.
// F16/F32 targets keep every matrix in that type: the AWQ-scaled model for llama-quantize's
// own types (imatrix, other mixtures), as AutoAWQ's GGUF recipe does.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf_writer.h"
#include "model/config.h"

namespace awq {

// A --gguf-type: llama-quantize's ftype names (q4_0, q4_1, q5_0, q5_1, q8_0, q4_k_s, q4_k_m,
// q5_k_s, q5_k_m, q6_k, f16, f32; q4_k / q5_k mean q4_k_m / q5_k_m, as in llama-quantize).
struct GgufTarget {
  constexpr GgufTarget(GGMLType b = GGMLType::Q4_0, char m = 0) : base(b), mix(m) {}  // NOLINT
  GGMLType base;  // the type of most matrices
  char mix;       // 'S' / 'M': llama.cpp's _S / _M mixtures (Q4_K, Q5_K)
  std::string name() const;        // "Q4_K_M"
  uint32_t file_type() const;      // general.file_type (llama_ftype)
  bool operator==(const GgufTarget&) const = default;
};
Expected<GgufTarget> parse_gguf_type(const std::string& name);

// The type llama-quantize picks for the tensor `gguf_name` ("blk.3.attn_v.weight",
// "output.weight", "token_embd.weight") whose rows are ncols long, in a model of n_layers
// (tied: token_embd is also the output), has_imatrix: activation statistics weigh the rounding.
// *note (if given) is set when the row length forced llama.cpp's fallback type.
GGMLType gguf_tensor_type(const GgufTarget& t, const std::string& gguf_name, int n_layers,
                          int64_t ncols, bool tied, bool has_imatrix, std::string* note = nullptr);
// HF module prefix ("model.layers.3.self_attn.v_proj") -> llama.cpp tensor name, for the
// families GGUF export writes ("" when it has none).
std::string gguf_linear_name(const ModelConfig& cfg, const std::string& hf_prefix);

// The group quantization the AWQ search uses for a GGUF target: Q4_0 -> 4 bits, group 32,
// symmetric; Q4_1 / Q4_K -> 4 bits, group 32, zero point; Q5_0 / Q5_1 / Q5_K likewise with 5
// bits; Q6_K -> 6 bits symmetric; Q8_0 -> 8 bits, group 32, symmetric. (With the ggml quantizer
// scoring every ratio, this grid only matters for the statistics' shapes.)
// F16/F32: false (the caller's --w-bit/--group-size apply).
bool gguf_search_config(const GgufTarget& t, int* w_bit, int* group_size, bool* zero_point);

class GgufModelWriter {
 public:
  // Checks that the family and config can be written (errors name the field), then opens the
  // writer (OUT.tmp-<pid>, renamed by finish()).
  static Expected<GgufModelWriter> create(const std::string& out_path, const ModelConfig& cfg,
                                          const GgufTarget& target, bool overwrite);

  // A block linear under its HF module prefix ("model.layers.3.self_attn.q_proj"): W [N][K]
  // row-major, imp [K] (mean squared input per channel; nullptr = uniform), bias [N] or null.
  Status add_linear(const std::string& prefix, const float* W, int N, int K, const float* imp,
                    const float* bias);
  // Any other tensor by HF name (norms, embeddings, lm_head), row-major shape.
  Status add_tensor(const std::string& hf_name, const std::vector<int64_t>& shape,
                    const float* data);
  // Metadata and tokenizer from src_model_dir (tokenizer.json, tokenizer_config.json), then the
  // file is completed and renamed into place.
  Status finish(const std::string& src_model_dir);
  void abort() { w_.abort(); }

  // Decisions worth a log line (type fallbacks).
  const std::vector<std::string>& notes() const { return notes_; }
  const GgufTarget& target() const { return target_; }

 private:
  GgufModelWriter(GGUFWriter w) : w_(std::move(w)) {}
  Expected<std::string> gguf_name(const std::string& hf_name) const;
  const float* gguf_rows(const std::string& hf, const float* W, int64_t N, int64_t K,
                        std::vector<float>& buf) const;
  Status write_matrix(const std::string& gguf, GGMLType t, const float* W, int64_t N, int64_t K,
                      const float* imp);
  GGUFWriter w_;
  ModelConfig cfg_;
  GgufTarget target_;
  std::vector<std::string> notes_;
};

}  // namespace awq
