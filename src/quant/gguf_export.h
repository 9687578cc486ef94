// `awq quantize --format gguf`: the AWQ-transformed model (scales folded into the previous ops,
// clipping applied) as one GGUF file that llama.cpp loads, with llama.cpp's tensor names and
// metadata, the tokenizer and chat template of the source directory.
//
// Families: those whose description names a GGUF architecture and which llama.cpp reads with
// this metadata (llama, qwen2, qwen3). Refused with a message naming the reason: Gemma (its
// SentencePiece vocabulary and 1 + w norms are not written yet), MoE, sliding windows,
// rope_scaling.
//
// Tensor types (what llama.cpp's llama-quantize picks for the same target type):
//   block linears        the target type, quantized row by row (quant/ggml_quant.h) with the
//                        AWQ activation statistics as importance (none for RTN);
//   token_embd (untied)  the target type, no importance;
//   output / tied token_embd: llama-quantize's choice is Q6_K, or Q8_0 when the row length is
//                        not a multiple of 256. We do not write Q6_K: Q8_0 in both cases (noted
//                        in the log when llama-quantize would have chosen Q6_K);
//   norms, biases        F32.
// F16/F32 targets keep every matrix in that type: the AWQ-scaled model for llama-quantize's
// own types (K-quants, imatrix), as AutoAWQ's GGUF recipe does.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf_writer.h"
#include "model/config.h"

namespace awq {

// "q4_0" / "Q4_0" ... -> type (F32, F16, Q8_0, Q4_0, Q4_1); an error listing the names.
Expected<GGMLType> parse_gguf_type(const std::string& name);
// The group quantization the AWQ search uses for a GGUF target type: Q4_0 -> 4 bits, group 32,
// symmetric; Q4_1 -> 4 bits, group 32, zero point; Q8_0 -> 8 bits, group 32, symmetric.
// F16/F32: false (the caller's --w-bit/--group-size apply).
bool gguf_search_config(GGMLType t, int* w_bit, int* group_size, bool* zero_point);

class GgufModelWriter {
 public:
  // Checks that the family and config can be written (errors name the field), then opens the
  // writer (OUT.tmp-<pid>, renamed by finish()).
  static Expected<GgufModelWriter> create(const std::string& out_path, const ModelConfig& cfg,
                                          GGMLType type, bool overwrite);

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
  GGMLType type() const { return type_; }

 private:
  GgufModelWriter(GGUFWriter w) : w_(std::move(w)) {}
  Expected<std::string> gguf_name(const std::string& hf_name) const;
  const float* gguf_rows(const std::string& hf, const float* W, int64_t N, int64_t K,
                        std::vector<float>& buf) const;
  Status write_matrix(const std::string& gguf, GGMLType t, const float* W, int64_t N, int64_t K,
                      const float* imp);
  GGUFWriter w_;
  ModelConfig cfg_;
  GGMLType type_ = GGMLType::Q4_0;
  std::vector<std::string> notes_;
  bool noted_output_ = false;
};

}  // namespace awq
