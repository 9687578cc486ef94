// `awq quantize`: the whole pipeline, block by block (spec §3), memory bounded by one
// decoder block plus the calibration activations.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/forward.h"

#include "core/status.h"
#include "io/gguf.h"
#include "quant/awq_checkpoint.h"
#include "quant/awq_search.h"
#include "quant/gguf_export.h"

namespace awq {

struct QuantizeOptions {
  SearchOptions search;                 // quant config, duo scaling, clipping
  enum class Method { Awq, Rtn } method = Method::Awq;
  std::string calib_path;               // "" = embedded default corpus
  int n_samples = 128;
  int seqlen = 512;
  int search_blocks = 16;               // calibration blocks used to score the grid (0 = all);
                                        // statistics, Gram losses and clipping use all blocks
  int chunk_blocks = 8;                 // blocks run through the fp32 block at once
  // Score linear-only groups (v->o, up->down) with the Gram matrix of their inputs over all
  // calibration tokens (exact loss, N*K*K per grid point); false: direct forward on the
  // search subset, as the reference does.
  bool gram_loss = true;
  // GQA models: also scale v -> o with one scale per v channel shared by the query heads
  // that read it (the reference skips v -> o when the shapes differ).
  bool gqa_o_scaling = false;
  // Score each grid ratio with the clipping search applied (per-group Gram clipping on the
  // scaled weights, then quantization), i.e. with the weights the final quantizer produces;
  // false: plain round-to-nearest on the grid and clipping only after, as the reference does.
  bool clip_aware_search = true;
  std::vector<std::string> modules_to_not_convert;
  bool overwrite = false;
  CheckpointFormat format = CheckpointFormat::AutoAwq;  // --format (docs/FORMAT.md)
  // --format gguf: the tensor type of the block linears (quant/gguf_export.h); out_dir is then
  // the .gguf file. The search's QuantConfig should follow gguf_search_config() for block types.
  GgufTarget gguf_type;  // --gguf-type (default Q4_0)
  bool progress = true;
  size_t max_shard_bytes = size_t(2) << 30;
  // Resume (quant/resume.h): after every block, save the state in OUT_DIR.resume (default);
  // resume: continue from that state when present (refused when an option or the input
  // differs). A successful run removes the state.
  bool resume_state = true;
  bool resume = false;
  // Cancellation: core/cancel.h's flag (SIGINT/SIGTERM) is always polled; this one too.
  const std::atomic<bool>* cancel = nullptr;
  // Called (on the quantizing thread) before the first block and after each decoder block:
  // (blocks done, blocks total). Used by the Python binding's progress callback.
  std::function<void(int64_t, int64_t)> on_progress;
};

struct GroupReport {
  int layer = 0;
  std::string group;       // e.g. "q_proj,k_proj,v_proj"
  int best_index = -1;     // grid index; ratio = best_index / n_grid
  double loss_best = 0, loss_identity = 0;  // loss at the chosen ratio and at ratio 0
  bool fallback = false;
  std::vector<double> losses;  // per grid index (NaN, null in JSON: not evaluated)
};

struct ClipReport {
  int layer = 0;
  std::string linear;                       // e.g. "down_proj"
  double err_before = 0, err_after = 0;     // output error per (row, group): plain quantization
                                            // vs the chosen clipping (search_and_apply_clip*)
};

// MoE: calibration tokens routed to one expert of one block (all calibration blocks). An expert
// with none gets no statistics: its up -> down scale is the identity and its linears are not
// clipped (plain round-to-nearest of its weights; gate/up still carry the block's shared
// post-attention-norm scales, an exact refactoring of the same function).
struct ExpertReport {
  int layer = 0, expert = 0;
  int64_t tokens = 0;
};

// Per-expert mean |x| of the down_proj inputs, from only the tokens routed to each expert
// (MoeRecord::down_in), accumulated over calibration chunks (fp64 sums).
class MoeExpertStats {
 public:
  MoeExpertStats(int n_experts, int width) : sum_(n_experts), n_(n_experts, 0), width_(width) {}
  void add(const MoeRecord& rec);
  int64_t tokens(int e) const { return n_[e]; }
  std::vector<float> mean(int e) const;  // empty when the expert got no tokens

 private:
  std::vector<std::vector<double>> sum_;
  std::vector<int64_t> n_;
  int width_;
};

struct PhaseReport {
  std::string name;  // "forward", "grid gate_proj,up_proj", "clip", "write", ...
  double seconds = 0;
  double gemm_flop = 0;
  int blocks = 0;  // decoder blocks that ran the phase in this process
};

struct QuantizeReport {
  double seconds = 0;
  double gemm_flop = 0;  // floating-point operations in dense matrix products (core/flops.h)
  // Wall time and matrix work per phase, summed over the blocks this process ran (a resumed
  // run counts only its own blocks); in first-run order.
  std::vector<PhaseReport> phases;
  int n_blocks = 0, samples_used = 0;
  int64_t calib_tokens = 0;
  std::vector<GroupReport> groups;
  std::vector<ClipReport> clips;
  std::vector<std::string> warnings;
  std::vector<ExpertReport> experts;  // MoE models with AWQ: one per (block, expert)
  double params_quantized = 0, params_total = 0;
};

// The report as JSON: the one serialization behind `awq quantize --report`, the --resume state
// of a block (groups, clips, warnings, experts from index `from` on) and the Python module's dict.
struct ReportRange {
  size_t groups = 0, clips = 0, warnings = 0, experts = 0;  // first entries to include
};
nlohmann::json report_entries_json(const QuantizeReport& r, const ReportRange& from = {});
nlohmann::json report_to_json(const QuantizeReport& r);  // entries + run totals

// model: an HF directory or a .gguf file (converted to a temporary HF directory first).
Expected<QuantizeReport> quantize_model(const std::string& model, const std::string& out_dir,
                                        const QuantizeOptions& opt);

}  // namespace awq
