// The AWQ search (spec §3), architecture-free: it sees linears, recorded inputs and a
// callback that runs "the module whose output is compared". The per-architecture part is
// only the table of scale groups in model/config.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/weights.h"
#include "quant/group_quant.h"

namespace awq {

struct SearchOptions {
  QuantConfig q;
  bool duo_scaling = true;
  int n_grid = 20;            // ratios 0/n .. (n-1)/n
  // Coarse-to-fine grid: 1 = every ratio; k > 1 = every k-th ratio (0, k, 2k, ...), then the
  // k - 1 ratios on each side of the best of those (search_scales_loss). It finds the full
  // grid's ratio whenever that lies within k - 1 steps of the best coarse one. Default 5: 11-12
  // of the 20 ratios scored, and on SmolLM2 W4 and W3 g64 every one of the 90 groups' choices
  // equals the full grid's (so do the checkpoints' bytes; docs/RESULTS.md). Strides 2-4 missed
  // 1-5 groups there: the loss over the ratios has more than one basin.
  int grid_stride = 5;
  bool clip = true;
  int clip_grid = 20;         // max_shrink 0.5 -> shrink steps 0..9 of 20
  float max_shrink = 0.5f;
  int clip_sample_tokens = 512;
  int clip_batch_rows = 64;   // output rows per batch in the clip search
  // Clipping search: Sampled = the reference (symmetric +-max shrink, error on 512 sampled
  // tokens); Gram = error exact over all calibration tokens (Gram matrix of the inputs);
  // GramAsym = Gram, and the group's max and min are also shrunk separately (a superset of the
  // reference's candidates).
  // Joint = GramAsym's candidates, chosen for the whole row's output error: the per-group
  // choice above ignores the cross terms d_g^T G_gh d_h between groups of one row; Joint
  // starts from it and runs `clip_sweeps` coordinate-descent sweeps over the groups, each pick
  // minimising the row's exact error given the other groups' current picks.
  enum class ClipMode { Sampled, Gram, GramAsym, Joint } clip_mode = ClipMode::Joint;
  int clip_sweeps = 2;
  // GramAsym/Joint: the (max, min) shrink pairs use every clip_pair_stride-th shrink step
  // (1: all 10 x 10; 2: 5 x 5).
  int clip_pair_stride = 1;
  // The clipping search run on every grid ratio by the clip-aware scale search (quantize.h
  // clip_aware_search), named by `--grid-clip`: "asym" = GramAsym (10 symmetric shrinks and all
  // 100 (max, min) pairs per group), "coarse" = GramAsym on every other step (10 + 25
  // candidates; the default: same quality as asym on SmolLM2 W4/W3, docs/RESULTS.md), "sym" =
  // Gram (the 10 symmetric shrinks). The final clip is clip_mode.
  ClipMode grid_clip_mode = ClipMode::GramAsym;
  int grid_clip_pair_stride = 2;
  // When set, the grid search quantizes the scaled weights W [N][K] (columns already multiplied
  // by s) with this function instead of fake_quantize(q): GGUF export scores every ratio with
  // the ggml block quantizer it will write, weighted by the importance the scaled inputs x / s
  // give (quant/ggml_quant.h). l: the linear W belongs to (its type can differ within a group).
  std::function<void(const Linear& l, float* W, int N, int K, const std::vector<float>& s)>
      quantizer;
};

// Ratios the grid search scores at most: n_grid, or with a stride k > 1 the coarse ones plus
// the 2 (k - 1) around the best (fewer at the ends of the grid).
int grid_points(const SearchOptions& o);

// --grid-clip NAME -> grid_clip_mode / grid_clip_pair_stride; false for an unknown name.
bool set_grid_clip(SearchOptions& o, const std::string& name);
std::string grid_clip_name(const SearchOptions& o);
inline constexpr const char* kGridClipNames[] = {"asym", "coarse", "sym"};

// w_mean (spec §3.3): per input channel mean over output rows of |w| / max|w| of its group.
std::vector<float> weight_channel_mean(const std::vector<const Linear*>& linears, int group_size);

// AWQ scales for ratio a: s = clamp(x^a / (w^(1-a) + 1e-4), 1e-4) (duo) or clamp(x^a, 1e-4),
// normalised by sqrt(max * min); non-finite -> 1.
std::vector<float> awq_scales_for_ratio(const std::vector<float>& x_mean,
                                        const std::vector<float>& w_mean, float ratio, bool duo);

// Called on a linear of a group during the grid search after its columns were scaled by s and
// before it is quantized (clip-aware search: the clipping search runs here, so each ratio is
// scored with the weights the final quantizer will produce). index = position in `linears`.
using PrepareFn = std::function<void(int index, Linear& l, const std::vector<float>& s)>;

// Replace each linear's weight by Q(W * s) / s in place (columns scaled); `prepare` (optional)
// runs on W * s before Q. Q: opt.quantizer when set, else fake_quantize(opt.q).
void quantize_with_scales(Linear& l, const std::vector<float>& s, const SearchOptions& opt,
                          const std::function<void(Linear&)>& prepare = nullptr);

struct ScaleResult {
  std::vector<float> scales;   // [in] best scales (all 1 when fallback)
  int best_index = -1;         // grid index of the best ratio (-1: none finite)
  double best_loss = 0;
  std::vector<double> losses;  // per grid point (NaN: not evaluated, coarse-to-fine grid)
  bool fallback = false;       // identity scale used (non-finite stats or no finite loss)
  std::string note;
};

// Grid search on a loss. For each ratio the linears' weights are replaced by Q(W*s)/s, loss()
// is called (it sees the current weights) and the weights are restored. `tie` (optional, one id
// per input channel) makes channels with equal ids share one scale: their x_mean and w_mean
// are averaged before the scales are formed (GQA v -> o, where one v channel feeds several
// o_proj input channels).
using LossFn = std::function<double()>;
ScaleResult search_scales_loss(std::vector<Linear*> linears, const std::vector<float>& x_mean,
                               const LossFn& loss, const SearchOptions& opt,
                               const std::string& name, const std::vector<int>* tie = nullptr,
                               const PrepareFn& prepare = nullptr);

// Output error of one linear from the Gram matrix of its inputs: for W' = W + D,
// mean over tokens and outputs of ((W' - W) x)^2 = sum_n d_n^T G d_n / (T * N), G = X^T X.
// Equal to the direct loss up to rounding, at N*K*K per evaluation instead of T*N*K.
class GramLoss {
 public:
  explicit GramLoss(int K);
  GramLoss(const float* x, int64_t n_tok, int K) : GramLoss(K) { add(x, n_tok); }
  void add(const float* x, int64_t n_tok);  // x [n_tok][K]
  int64_t tokens() const { return n_tok_; }
  double operator()(const Linear& current, const std::vector<float>& original_weight) const;
  int K() const { return K_; }
  // out[n][n] (full, symmetric) = rows/cols k0 .. k0+n of G, each entry divided by
  // s[i] * s[j] when s is given (the Gram of inputs x / s).
  void block(int k0, int n, const std::vector<float>* s, float* out) const;

 private:
  int K_;
  int64_t n_tok_ = 0;
  std::vector<float> G_;  // [K][K], upper triangle valid
};

// GQA v -> o: tie id (the v output channel) of each o_proj input channel: head h, dim d reads
// v channel (h / (n_heads / n_kv_heads)) * head_dim + d.
std::vector<int> gqa_o_tie(const ModelConfig& cfg);
// The per-v-channel scales of tied per-o-channel scales s (n_prev = v's output size).
std::vector<float> untie_scales(const std::vector<float>& s, const std::vector<int>& tie, int n_prev);

// Mean squared difference (fp64 accumulation).
double mse(const std::vector<float>& a, const std::vector<float>& b);

// Average v over the channels of each tie id (in place).
void tie_average(std::vector<float>& v, const std::vector<int>& tie);

// Grid search. `linears` are mutated during the search and restored afterwards.
// run_module() must run the compared module with the linears' current weights and return
// its output; y_ref is that output with the original weights.
ScaleResult search_scales(std::vector<Linear*> linears, const std::vector<float>& x_mean,
                          const std::function<void(std::vector<float>&)>& run_module,
                          const std::vector<float>& y_ref, const SearchOptions& opt,
                          const std::string& name);

// Fold scales: prev op output /= s, linears' columns *= s.
void apply_scales_to_norm(std::vector<float>& norm_weight, const std::vector<float>& s);
void apply_scales_to_prev_linear(Linear& prev, const std::vector<float>& s);  // last len(s) rows
void apply_scales_to_linear(Linear& l, const std::vector<float>& s);          // columns *= s
void divide_inputs(std::vector<float>& x, int width, const std::vector<float>& s);

// Clip search for one linear (spec §3.5) on inputs x [n_tok][in]: returns max_val [out][n_groups]
// and clamps the weight to it. Returns the mean output error before/after for reporting.
struct ClipResult {
  std::vector<float> max_val;
  double err_before = 0, err_after = 0;
};
ClipResult search_and_apply_clip(Linear& l, const float* x, int64_t n_tok, const SearchOptions& opt);

// Clipping search scored on the Gram matrix of the linear's inputs (all calibration tokens):
// the error of a candidate D = Q(clamp(w)) - w of one group is D^T G_gg D, exact for the group's
// contribution to the output. Candidates: the reference's symmetric [-mv, mv] shrinks and, in
// GramAsym mode, every (max shrink, min shrink) pair. in_scale: scales the recorded inputs were
// divided by after the Gram was accumulated (nullptr: none).
ClipResult search_and_apply_clip_gram(Linear& l, const GramLoss& gram,
                                      const std::vector<float>* in_scale,
                                      const SearchOptions& opt);

}  // namespace awq
