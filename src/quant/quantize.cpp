#include "quant/quantize.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "core/cancel.h"
#include "core/flops.h"
#include "core/progress.h"
#include "core/threads.h"
#include "model/gguf_convert.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "model/forward.h"
#include "quant/awq_checkpoint.h"
#include "quant/awq_pack.h"
#include "quant/calibration.h"
#include "quant/ggml_quant.h"
#include "quant/gguf_export.h"
#include "quant/resume.h"

namespace awq {
namespace fs = std::filesystem;

namespace {

bool not_converted(const std::vector<std::string>& mods, const std::string& prefix) {
  for (const auto& m : mods)
    if (!m.empty() && prefix.find(m) != std::string::npos) return true;
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

// Accumulates mean |x| (or, with square, mean x^2) per channel over all calibration tokens
// (fp64 sums). Mean x^2 is the importance of each input channel for GGUF export's block
// quantizer (quant/ggml_quant.h).
struct ChannelMean {
  bool square = false;
  std::vector<double> sum;
  int64_t n = 0;
  void add(const std::vector<float>& x, int width) {
    if (sum.empty()) sum.assign(width, 0.0);
    const int64_t rows = (int64_t)x.size() / width;
    for (int64_t t = 0; t < rows; ++t)
      for (int k = 0; k < width; ++k) {
        const double v = x[(size_t)t * width + k];
        sum[k] += square ? v * v : std::fabs(v);
      }
    n += rows;
  }
  std::vector<float> mean() const { return mean_scaled({}); }
  // mean x^2 of the inputs divided by the AWQ scales s: divided by s^2
  std::vector<float> mean_scaled(const std::vector<float>& s) const {
    std::vector<float> m(sum.size());
    for (size_t k = 0; k < sum.size(); ++k) {
      const double sk = s.empty() ? 1.0 : (double)s[k];
      m[k] = (float)(sum[k] / (double)n / (sk * sk));
    }
    return m;
  }
};

// Which recorded input feeds a scale group / linear.
enum class Input { Attn, O, Mlp, Down };
Input input_of(const std::string& linear) {
  if (linear == "q_proj" || linear == "k_proj" || linear == "v_proj") return Input::Attn;
  if (linear == "o_proj") return Input::O;
  if (linear == "gate_proj" || linear == "up_proj") return Input::Mlp;
  return Input::Down;
}
std::vector<float>& record_of(BlockRecord& r, Input in) {
  switch (in) {
    case Input::Attn: return r.attn_in;
    case Input::O: return r.o_in;
    case Input::Mlp: return r.mlp_in;
    default: return r.down_in;
  }
}

}  // namespace

void MoeExpertStats::add(const MoeRecord& rec) {
  for (size_t e = 0; e < rec.down_in.size() && e < sum_.size(); ++e) {
    const std::vector<float>& x = rec.down_in[e];
    if (x.empty()) continue;
    if (sum_[e].empty()) sum_[e].assign(width_, 0.0);
    const int64_t rows = (int64_t)x.size() / width_;
    for (int64_t t = 0; t < rows; ++t)
      for (int k = 0; k < width_; ++k) sum_[e][k] += std::fabs(x[(size_t)t * width_ + k]);
    n_[e] += rows;
  }
}

std::vector<float> MoeExpertStats::mean(int e) const {
  if (n_[e] == 0) return {};
  std::vector<float> m(width_);
  for (int k = 0; k < width_; ++k) m[k] = (float)(sum_[e][k] / (double)n_[e]);
  return m;
}

namespace {

bool cancelled(const QuantizeOptions& opt) {
  return cancel_requested() || (opt.cancel && opt.cancel->load(std::memory_order_relaxed));
}

Status check_cancel(const QuantizeOptions& opt) {
  if (!cancelled(opt)) return Status::Ok();
  if (cancel_requested()) return awq::check_cancel("quantize");
  return make_error("quantize: interrupted by a signal (SIGINT/SIGTERM)");
}

// Everything that changes the checkpoint's bytes; a resumed run must match it (resume.h).
nlohmann::json options_fingerprint(const QuantizeOptions& o, const CalibBlocks& calib,
                                   nlohmann::json input) {
  const SearchOptions& s = o.search;
  const char* clip_modes[] = {"sampled", "gram", "gram-asym", "joint"};
  nlohmann::json j = {
      {"--method", o.method == QuantizeOptions::Method::Awq ? "awq" : "rtn"},
      {"--w-bit", s.q.w_bit},
      {"--group-size", s.q.group_size},
      {"--zero-point", s.q.zero_point},
      {"--modules-to-not-convert", o.modules_to_not_convert},
      {"--threads", num_threads()},  // OpenMP reductions and BLAS splits follow the thread count
      {"--format", checkpoint_format_name(o.format)},
      {"input", std::move(input)},
  };
  if (o.method == QuantizeOptions::Method::Awq) {
    j["--clip"] = s.clip ? clip_modes[(int)s.clip_mode] : "off (--no-clip)";
    j["--no-duo-scaling"] = !s.duo_scaling;
    j["--n-samples"] = o.n_samples;
    j["--seqlen"] = o.seqlen;
    j["--search-blocks"] = o.search_blocks;
    j["--gram-loss"] = o.gram_loss;
    j["--gqa-o-scale"] = o.gqa_o_scaling;
    j["--clip-aware-search"] = o.clip_aware_search;
    j["--grid-clip"] = grid_clip_name(s);
    if (s.grid_stride != 1) j["--grid-stride"] = s.grid_stride;  // absent: states before it
    if (s.clip_pair_stride != 1) j["--clip-pair-stride"] = s.clip_pair_stride;
    j["search internals"] = {s.n_grid, s.clip_grid, s.max_shrink, s.clip_sample_tokens,
                             s.clip_batch_rows, s.clip_sweeps, o.chunk_blocks};
    j["calibration (--calib text and tokenizer)"] = {
        {"blocks", calib.n_blocks},
        {"token hash", fnv1a_hex(calib.tokens.data(), calib.tokens.size() * sizeof(int32_t))}};
  }
  return j;
}

// Estimated work (FLOP of the matrix products; element-wise passes weighted as 10 FLOP per
// element touched, they run ~10x slower than sgemm) of one AWQ block, per phase, for the
// progress line's ETA before the first block has been timed.
struct PhaseWork {
  std::string name;
  double work;
};

// [out, in] of a block linear from the config.
std::pair<double, double> linear_nk(const ModelConfig& c, const std::string& n) {
  const double H = c.hidden, qd = (double)c.n_heads * c.head_dim,
               kvd = (double)c.n_kv_heads * c.head_dim, I = c.intermediate;
  if (n == "q_proj") return {qd, H};
  if (n == "k_proj" || n == "v_proj") return {kvd, H};
  if (n == "o_proj") return {H, qd};
  if (n == "gate_proj" || n == "up_proj") return {I, H};
  return {H, I};  // down_proj
}

// Short names of the block linears of the model's architecture, in execution order.
std::vector<std::string> block_linear_names(const ModelConfig& c) {
  std::vector<std::string> v;
  for (const LinearName& l : c.arch->linears) v.push_back(l.name);
  return v;
}

std::vector<PhaseWork> block_phase_work(const ModelConfig& c, const QuantizeOptions& o, int NB,
                                        int T, int n_search) {
  constexpr double kElem = 10;  // work per element of a non-sgemm pass
  double params = 0;
  for (const auto& n : block_linear_names(c)) {
    const auto [N, K] = linear_nk(c, n);
    params += N * K;
  }
  if (o.method != QuantizeOptions::Method::Awq) return {{"quantize", kElem * params}};
  const SearchOptions& so = o.search;
  const double qd = (double)c.n_heads * c.head_dim, H = c.hidden, I = c.intermediate;
  const double tok = (double)NB * T, tok_s = (double)n_search * T;
  const double ns = std::max(1, (int)(so.max_shrink * so.clip_grid));
  const bool clip_gram = so.clip && so.clip_mode != SearchOptions::ClipMode::Sampled;
  auto clip_work = [&](double N, double K, SearchOptions::ClipMode m, int stride = 1) {
    const double G = so.q.group_size <= 0 ? K : so.q.group_size;
    using M = SearchOptions::ClipMode;
    if (m == M::Sampled) return (ns + 1) * N * K * (2 * std::min(tok_s, 512.0) + kElem);
    const double np = std::ceil(ns / stride);
    const double cand = m == M::Gram ? ns : ns + np * np;
    const double sweeps = m == M::Joint && K > G ? so.clip_sweeps : 0;
    // the sweeps reuse the candidates (awq_search.cpp): each adds one cross term per candidate
    return cand * N * K * (2 * G + kElem) + sweeps * cand * N * K * 2 +
           (sweeps > 0 ? 4 * N * K * K + sweeps * 4 * N * G * K : 0);
  };
  std::vector<PhaseWork> w;
  double fwd = 2 * params * tok + 2 * qd * T * tok + kElem * tok * (4 * H + qd + I);
  if (o.gram_loss || clip_gram) fwd += tok * (qd * qd + I * I);
  if (clip_gram) fwd += tok * 2 * H * H;
  w.push_back({"forward", fwd});
  auto clipped = [&](const std::string& n) { return n != "q_proj" && n != "k_proj"; };
  for (const ScaleGroup& g : c.arch->scale_groups) {
    const auto [N0, K0] = linear_nk(c, g.linears[0]);
    if (g.requires_same_shape && g.prev_kind == ScaleGroup::Prev::Linear) {
      const auto [Np, Kp] = linear_nk(c, g.prev_linear);
      if ((Np != N0 || Kp != K0) && !o.gqa_o_scaling) continue;
    }
    double eval = 0, prep = 0;
    for (const auto& n : g.linears) {
      const auto [N, K] = linear_nk(c, n);
      prep += kElem * N * K * 3;  // scale, fake-quantize, unscale
      if (o.clip_aware_search && clip_gram && clipped(n))
        prep += clip_work(N, K, so.grid_clip_mode, so.grid_clip_pair_stride);
    }
    if (g.compare == ScaleGroup::Compare::Attention) {
      double pa = 0;
      for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
        const auto [N, K] = linear_nk(c, n);
        pa += N * K;
      }
      eval = 2 * pa * tok_s + 2 * qd * T * tok_s;
    } else if (g.compare == ScaleGroup::Compare::Mlp) {
      eval = 2 * 3 * H * I * tok_s;
    } else {
      eval = o.gram_loss ? 2 * N0 * K0 * K0 : 2 * N0 * K0 * tok_s;
    }
    w.push_back({"grid " + join(g.linears), grid_points(so) * (eval + prep) + eval});
  }
  if (so.clip) {
    double cw = 0;
    for (const auto& n : block_linear_names(c)) {
      if (!clipped(n)) continue;
      const auto [N, K] = linear_nk(c, n);
      cw += clip_work(N, K, so.clip_mode, so.clip_pair_stride);
    }
    w.push_back({"clip", cw});
  }
  w.push_back({"write", kElem * params});
  return w;
}

Expected<QuantizeReport> quantize_hf(const std::string& model_dir, const std::string& src_files_dir,
                                     const std::string& out_dir, const std::string& input_id,
                                     const QuantizeOptions& opt_in) {
  const auto t_start = std::chrono::steady_clock::now();
  QuantizeOptions opt = opt_in;
  const bool gguf_out = opt.format == CheckpointFormat::Gguf;
  const bool plain_gguf = gguf_out && !ggml_is_block_type(opt.gguf_type.base);  // F16/F32
  // GGUF block types: no clipping search. The ggml quantizer's own importance-weighted scale
  // search (which every grid ratio is scored with) already chooses each block's range; the
  // clipping search's thresholds, found on our int grid, made SmolLM2 Q4_0 worse
  // (docs/RESULTS.md, "GGUF export read by llama.cpp").
  if (gguf_out && !plain_gguf) opt.search.clip = false;
  const uint64_t flops_start = flops_done();
  QuantizeReport rep;
  AWQ_ASSIGN(ModelConfig cfg, load_model_config(model_dir));
  if (cfg.quant.present)
    return make_error(model_dir, "/config.json: the model is already quantized (quantization_config present)");
  const QuantConfig& qc = opt.search.q;
  // GGUF F16/F32 with RTN quantizes nothing: no group has to fit.
  if (!(plain_gguf && opt.method == QuantizeOptions::Method::Rtn)) {
    const int ks[3] = {cfg.hidden, cfg.n_heads * cfg.head_dim,
                       cfg.arch->moe ? cfg.moe_intermediate : cfg.intermediate};
    for (int K : ks) {
      if (K % effective_group(qc, K) == 0) continue;
      int fit = -1;  // the largest vLLM group size that divides every input size
      for (int g : {128, 64, 32})
        if (ks[0] % g == 0 && ks[1] % g == 0 && ks[2] % g == 0) {
          fit = g;
          break;
        }
      return make_error("--group-size ", qc.group_size, " does not divide the input size ", K,
                        " of this model's linear layers (input sizes ", ks[0], ", ", ks[1], ", ",
                        ks[2], "); use --group-size ", fit,
                        fit == -1 ? " (per output channel)" : "");
    }
  }
  AWQ_ASSIGN(Tokenizer tok, Tokenizer::load(model_dir));
  AWQ_ASSIGN(SafeTensors st, SafeTensors::open(model_dir));
  const bool awq = opt.method == QuantizeOptions::Method::Awq;
  // MoE: the router is never quantized; modules_to_not_convert names it (the loader and vLLM
  // read that list), as AutoAWQ writes it.
  std::vector<std::string> not_convert = opt.modules_to_not_convert;
  if (cfg.arch->moe)
    for (const auto& m : cfg.arch->never_quantized)
      if (m != "lm_head" && std::find(not_convert.begin(), not_convert.end(), m) == not_convert.end())
        not_convert.push_back(m);
  CalibBlocks calib;  // RTN needs no calibration data
  if (awq) {
    AWQ_ASSIGN(auto texts, load_calibration_texts(opt.calib_path));
    AWQ_ASSIGN(calib, make_calibration_blocks(texts, tok, opt.n_samples, opt.seqlen));
  }
  rep.n_blocks = calib.n_blocks;
  rep.samples_used = calib.samples_used;
  rep.calib_tokens = (int64_t)calib.tokens.size();
  const int T = calib.seqlen, NB = calib.n_blocks, H = cfg.hidden;
  const int n_search = opt.search_blocks > 0 ? std::min(opt.search_blocks, NB) : NB;
  if (awq)
    std::fprintf(stderr,
                 "calibration: %d samples -> %d blocks x %d tokens; grid scored on %d blocks\n",
                 calib.samples_used, NB, T, n_search);

  // Resume state (quant/resume.h): OUT_DIR.resume next to the output.
  std::string out_norm = fs::path(out_dir).lexically_normal().string();
  while (out_norm.size() > 1 && out_norm.back() == '/') out_norm.pop_back();
  ResumeState resume(out_norm + ".resume");
  nlohmann::json fingerprint;
  int start_layer = 0;
  if (gguf_out && opt.resume)
    return make_error("--resume is not supported with --format gguf (a GGUF file is written in "
                      "one piece; rerun without --resume)");
  if (!gguf_out && (opt.resume_state || opt.resume)) {
    AWQ_ASSIGN(nlohmann::json input, input_fingerprint(input_id));
    fingerprint = options_fingerprint(opt, calib, std::move(input));
  }
  if (!gguf_out && resume.exists()) {
    if (opt.resume) {
      AWQ_ASSIGN(start_layer, resume.load(fingerprint));
      if (start_layer < 0 || start_layer > cfg.n_layers)
        return make_error(resume.dir(), "/state.json: blocks_done ", start_layer,
                          " outside 0..", cfg.n_layers);
      std::fprintf(stderr, "resume: %d of %d blocks done in %s; continuing at block %d\n",
                   start_layer, cfg.n_layers, resume.dir().c_str(), start_layer);
    } else if (opt.overwrite) {
      resume.remove();
    } else {
      return make_error("an interrupted run left its resume state in ", resume.dir(),
                        ": pass --resume to continue it (same arguments), or --overwrite / "
                        "remove it to start again");
    }
  } else if (opt.resume) {
    std::fprintf(stderr, "resume: no saved state in %s; starting at block 0\n",
                 resume.dir().c_str());
  }
  // One of the two writers: the checkpoint directory (AutoAWQ / compressed-tensors) or GGUF.
  std::optional<AwqCheckpointWriter> ckpt;
  std::optional<GgufModelWriter> gguf;
  if (gguf_out) {
    AWQ_ASSIGN(GgufModelWriter g, GgufModelWriter::create(out_dir, cfg, opt.gguf_type, opt.overwrite));
    gguf.emplace(std::move(g));
  } else {
    AWQ_ASSIGN(AwqCheckpointWriter w, AwqCheckpointWriter::create(out_dir, qc, opt.overwrite,
                                                                  opt.max_shard_bytes, opt.format));
    ckpt.emplace(std::move(w));
  }
  // Unquantized tensors: fp16 in a checkpoint; in GGUF, the type llama.cpp would give them.
  auto put_plain = [&](const std::string& name, const std::vector<int64_t>& shape,
                       const float* data) -> Status {
    return gguf ? gguf->add_tensor(name, shape, data) : ckpt->add_fp16(name, shape, data);
  };
  // The writer calls of the current block, kept for the resume state.
  BlockRecordedTensors recorded;
  const bool keep_state = opt.resume_state && !gguf_out;
  auto add_fp16 = [&](const std::string& name, const std::vector<int64_t>& shape,
                      const float* data) -> Status {
    AWQ_TRY(put_plain(name, shape, data));
    if (keep_state) {
      size_t n = 1;
      for (int64_t d : shape) n *= (size_t)d;
      BlockRecordedTensors::Item it;
      it.name = name;
      it.shape = shape;
      it.data.assign(data, data + n);
      recorded.items.push_back(std::move(it));
    }
    return Status::Ok();
  };
  auto add_quantized = [&](const std::string& prefix, QuantizedLinear&& ql,
                           const float* bias) -> Status {
    AWQ_TRY(ckpt->add_quantized(prefix, ql, bias));
    if (keep_state) {
      BlockRecordedTensors::Item it;
      it.quantized = true;
      it.name = prefix;
      if (bias) it.bias.assign(bias, bias + ql.N);
      it.ql = std::move(ql);
      recorded.items.push_back(std::move(it));
    }
    return Status::Ok();
  };
  int marlin_fallbacks = 0;
  // Replays block `layer` of the resume state into the writer and the report.
  auto replay = [&](int layer) -> Status {
    AWQ_ASSIGN(BlockRecordedTensors t, resume.read_block(layer));
    for (auto& it : t.items) {
      if (it.quantized)
        AWQ_TRY(ckpt->add_quantized(it.name, it.ql, it.bias.empty() ? nullptr : it.bias.data()));
      else
        AWQ_TRY(ckpt->add_fp16(it.name, it.shape, it.data.data()));
    }
    const nlohmann::json& j = t.report;
    for (const auto& g : j.value("groups", nlohmann::json::array())) {
      GroupReport gr{g["layer"], g["group"], g["best_index"], g["loss_best"],
                     g["loss_identity"], g["fallback"], {}};
      for (const auto& v : g.value("losses", nlohmann::json::array()))
        gr.losses.push_back(v.is_number() ? v.get<double>()
                                          : std::numeric_limits<double>::quiet_NaN());
      rep.groups.push_back(std::move(gr));
    }
    for (const auto& c : j.value("clips", nlohmann::json::array()))
      rep.clips.push_back({c["layer"], c["linear"], c["err_before"], c["err_after"]});
    for (const auto& w : j.value("warnings", nlohmann::json::array())) rep.warnings.push_back(w);
    for (const auto& e : j.value("experts", nlohmann::json::array()))
      rep.experts.push_back({e[0].get<int>(), e[1].get<int>(), e[2].get<int64_t>()});
    rep.params_total += j.value("params_total", 0.0);
    rep.params_quantized += j.value("params_quantized", 0.0);
    marlin_fallbacks += j.value("marlin_fallbacks", 0);
    return Status::Ok();
  };
  // Embeddings: the input of block 0; stored fp16.
  std::vector<float> x((size_t)NB * T * H);
  {
    AWQ_ASSIGN(std::vector<float> embed, st.to_f32("model.embed_tokens.weight", {cfg.vocab, H}));
    for (size_t t = 0; t < calib.tokens.size(); ++t) {
      const int id = calib.tokens[t];
      if (id < 0 || id >= cfg.vocab)
        return make_error("calibration token id ", id, " outside the vocabulary (", cfg.vocab, ")");
      std::memcpy(x.data() + t * H, embed.data() + (size_t)id * H, sizeof(float) * H);
      if (cfg.embed_scale != 1.0f)  // Gemma: the block input is the scaled embedding
        for (int i = 0; i < H; ++i) x[t * H + i] *= cfg.embed_scale;
    }
    AWQ_TRY(put_plain("model.embed_tokens.weight", {cfg.vocab, H}, embed.data()));
  }
  for (int layer = 0; layer < start_layer; ++layer) {
    AWQ_TRY(check_cancel(opt));
    AWQ_TRY(replay(layer));
  }
  if (awq && start_layer > 0 && start_layer < cfg.n_layers) AWQ_TRY(resume.read_x(start_layer, x));
  Rope rope;
  if (awq) rope.build(cfg, T);
  // The calibration forward runs `chunk` calibration blocks at a time: as many as fit in about
  // 10 GFLOP (a fraction of a second), so a cancel is seen quickly on big models.
  int chunk = 1;
  {
    double params = 0;
    for (const auto& n : block_linear_names(cfg)) {
      const auto [N, K] = linear_nk(cfg, n);
      params += N * K;
    }
    const double per_seq = 2 * params * T + 2.0 * cfg.n_heads * cfg.head_dim * T * T;
    chunk = std::clamp((int)(1e10 / std::max(1.0, per_seq)), 1, std::max(1, opt.chunk_blocks));
  }
  // Progress: per block, phases of estimated work; block 0's measured phase times replace the
  // estimates' proportions for the later blocks (all blocks have the same shapes).
  const std::vector<PhaseWork> est = block_phase_work(cfg, opt, NB, T, n_search);
  double block_work = 0;
  for (const auto& p : est) block_work += p.work;
  JobProgress prog(awq ? "awq" : "rtn", block_work * (cfg.n_layers - start_layer), opt.progress);
  std::vector<double> phase_s;  // measured seconds per phase of the first block run
  bool measured = false;
  size_t phase_i = 0;
  auto phase_t0 = std::chrono::steady_clock::now();
  int cur_layer = start_layer;
  std::string cur_phase;  // name of the phase running (for rep.phases)
  uint64_t phase_f0 = 0;
  auto close_phase = [&](std::chrono::steady_clock::time_point now) {
    if (cur_phase.empty()) return;
    auto it = std::find_if(rep.phases.begin(), rep.phases.end(),
                           [&](const PhaseReport& p) { return p.name == cur_phase; });
    if (it == rep.phases.end()) it = rep.phases.insert(rep.phases.end(), PhaseReport{cur_phase});
    it->seconds += std::chrono::duration<double>(now - phase_t0).count();
    it->gemm_flop += (double)(flops_done() - phase_f0);
    it->blocks += 1;
    cur_phase.clear();
  };
  auto phase = [&](const std::string& what) {
    const auto now = std::chrono::steady_clock::now();
    close_phase(now);
    cur_phase = what;
    phase_f0 = flops_done();
    if (!measured && phase_i > 0) phase_s.push_back(std::chrono::duration<double>(now - phase_t0).count());
    phase_t0 = now;
    double w = phase_i < est.size() ? est[phase_i].work : 0;
    if (measured && phase_i < phase_s.size()) {
      double tot = 0;
      for (double t : phase_s) tot += t;
      w = tot > 0 ? block_work * phase_s[phase_i] / tot : w;
    }
    ++phase_i;
    prog.begin_phase("block " + std::to_string(cur_layer + 1) + "/" + std::to_string(cfg.n_layers) +
                         " " + what, w);
  };
  if (opt.on_progress) opt.on_progress(start_layer, cfg.n_layers);
  for (int layer = start_layer; layer < cfg.n_layers; ++layer) {
    AWQ_TRY(check_cancel(opt));
    cur_layer = layer;
    phase_i = 0;
    recorded = BlockRecordedTensors{};
    const size_t n_groups_before = rep.groups.size(), n_clips_before = rep.clips.size(),
                 n_warn_before = rep.warnings.size(), n_experts_before = rep.experts.size();
    const double params_total_before = rep.params_total,
                 params_quantized_before = rep.params_quantized;
    const int marlin_before = marlin_fallbacks;
    phase(awq ? "forward" : "quantize");
    auto bw = load_block(st, cfg, layer);
    if (!bw) return make_error(model_dir, ": layer ", layer, ": ", bw.error().message);
    BlockWeights& b = *bw;
    std::vector<float> importance[4];  // GGUF export: mean x^2 per input channel, per Input
    st.release_pages();  // the block is copied out: keep the mapped input's RSS at one block
    if (opt.method == QuantizeOptions::Method::Awq) {
      // 1. fp32 block on all calibration blocks (in chunks): record linear inputs of the
      //    search subset, accumulate mean |x| per channel, and advance x to the block output.
      BlockRecord rec;  // inputs of the first n_search blocks
      ChannelMean m_attn, m_o, m_mlp, m_down;
      ChannelMean q_attn{true, {}, 0}, q_o{true, {}, 0}, q_mlp{true, {}, 0}, q_down{true, {}, 0};  // GGUF export only
      const bool clip_gram = opt.search.clip &&
                             opt.search.clip_mode != SearchOptions::ClipMode::Sampled;
      const bool gram_lin = opt.gram_loss || clip_gram;
      GramLoss gram_o(gram_lin ? cfg.n_heads * cfg.head_dim : 0),
          gram_down(gram_lin ? cfg.intermediate : 0);
      GramLoss gram_attn(clip_gram ? H : 0), gram_mlp(clip_gram ? H : 0);
      auto gram_of = [&](Input in) -> const GramLoss& {
        return in == Input::Attn ? gram_attn
               : in == Input::O  ? gram_o
               : in == Input::Mlp ? gram_mlp : gram_down;
      };
      // Clipping: not for q/k (their outputs go through the attention softmax), nor for
      // modules left unconverted.
      auto clipped = [&](const std::string& n) {
        return n != "q_proj" && n != "k_proj" &&
               !not_converted(not_convert, cfg.arch->linear_prefix(layer, n));
      };
      const bool moe = cfg.arch->moe;
      // A MoE block's shared expert (Qwen 2-MoE) reads the MLP input like the experts; its
      // down_proj input takes the dense model's Down slot (m_down, rec.down_in).
      const bool shared = cfg.arch->has_shared_expert();
      const int S = cfg.shared_intermediate;
      MoeExpertStats m_exp(moe ? cfg.n_experts : 0, cfg.moe_intermediate);
      if (moe) rec.moe.rows.assign(cfg.n_experts, {}), rec.moe.weight.assign(cfg.n_experts, {}),
          rec.moe.down_in.assign(cfg.n_experts, {});
      for (int c0 = 0; c0 < NB; c0 += chunk) {
        const int nb = std::min(chunk, NB - c0);
        BlockRecord cr;
        block_forward(cfg, b, rope, x.data() + (size_t)c0 * T * H, nb, T, &cr);
        report_phase_fraction((double)(c0 + nb) / NB);
        m_attn.add(cr.attn_in, H);
        m_o.add(cr.o_in, cfg.n_heads * cfg.head_dim);
        m_mlp.add(cr.mlp_in, H);
        if (!moe) m_down.add(cr.down_in, cfg.intermediate);
        else m_exp.add(cr.moe);
        if (shared) m_down.add(cr.moe.shared_down_in, S);
        if (gguf_out) {
          q_attn.add(cr.attn_in, H);
          q_o.add(cr.o_in, cfg.n_heads * cfg.head_dim);
          q_mlp.add(cr.mlp_in, H);
          if (!moe) q_down.add(cr.down_in, cfg.intermediate);
        }
        if (gram_lin) {
          gram_o.add(cr.o_in.data(), (int64_t)nb * T);
          if (!moe) gram_down.add(cr.down_in.data(), (int64_t)nb * T);
        }
        if (clip_gram) {
          gram_attn.add(cr.attn_in.data(), (int64_t)nb * T);
          gram_mlp.add(cr.mlp_in.data(), (int64_t)nb * T);
        }
        if (c0 < n_search) {
          const int keep = std::min(nb, n_search - c0);
          auto append = [&](std::vector<float>& dst, const std::vector<float>& src) {
            const size_t n = src.size() / nb * keep;
            dst.insert(dst.end(), src.begin(), src.begin() + n);
          };
          append(rec.attn_in, cr.attn_in);
          append(rec.o_in, cr.o_in);
          append(rec.mlp_in, cr.mlp_in);
          if (!moe) append(rec.down_in, cr.down_in);
          if (shared) append(rec.down_in, cr.moe.shared_down_in);
          // MoE: the routed rows of the kept calibration blocks, as rows of rec.mlp_in
          const int32_t row_end = (int32_t)keep * T, row_off = (int32_t)c0 * T;
          const int I = cfg.moe_intermediate;
          for (size_t e = 0; e < cr.moe.rows.size(); ++e)
            for (size_t i = 0; i < cr.moe.rows[e].size(); ++i) {
              if (cr.moe.rows[e][i] >= row_end) break;  // rows ascend
              rec.moe.rows[e].push_back(cr.moe.rows[e][i] + row_off);
              rec.moe.weight[e].push_back(cr.moe.weight[e][i]);
              rec.moe.down_in[e].insert(rec.moe.down_in[e].end(),
                                        cr.moe.down_in[e].begin() + i * I,
                                        cr.moe.down_in[e].begin() + (i + 1) * I);
            }
        }
        AWQ_TRY(check_cancel(opt));
      }
      const int64_t n_tok = (int64_t)n_search * T;
      // The compared module's forward, one calibration block (T rows) per call, so a cancel is
      // seen between calls (one 1.5B MLP over 16 blocks is minutes of work).
      // 2. scale search for every group, from the original weights; then apply all.
      struct Found {
        const ScaleGroup* g;
        std::vector<float> s;       // per input channel of the group's linears
        std::vector<float> s_prev;  // per output channel of the previous op
      };
      std::vector<Found> found;
      struct MoeFound {
        int expert;  // -1: the shared post-attention-norm group over every expert's gate/up
        std::vector<float> s;
      };
      std::vector<MoeFound> moe_found;
      auto report_group = [&](const std::string& group, const ScaleResult& r) {
        if (!r.note.empty()) {
          std::fprintf(stderr, "warning: %s\n", r.note.c_str());
          rep.warnings.push_back(r.note);
        }
        GroupReport gr;
        gr.layer = layer;
        gr.group = group;
        gr.best_index = r.best_index;
        gr.loss_best = r.best_loss;
        gr.loss_identity = r.losses.empty() ? 0 : r.losses[0];
        gr.fallback = r.fallback;
        gr.losses = r.losses;
        rep.groups.push_back(gr);
      };
      for (const ScaleGroup& g : cfg.arch->scale_groups) {
        if (g.experts && g.prev_kind == ScaleGroup::Prev::MlpNorm) {
          // every expert's gate/up share one scale vector; compare the whole MoE block (the
          // router sees the original input: its weight is compensated when the scales fold)
          phase("grid experts " + join(g.linears));
          std::vector<Linear*> ls;
          for (auto& ex : b.experts)
            for (const auto& n : g.linears) ls.push_back(&ex.linear(n));
          if (shared)
            for (const auto& n : g.linears) ls.push_back(&b.shared.linear(n));
          const std::vector<float> x_mean = m_mlp.mean();
          auto run = [&](std::vector<float>& y) {
            y.resize((size_t)n_tok * H);
            for (int sb = 0; sb < n_search && !cancelled(opt); ++sb)
              moe_forward(cfg, b, rec.mlp_in.data() + (size_t)sb * T * H, T,
                          y.data() + (size_t)sb * T * H);
          };
          std::vector<float> y_ref, y;
          run(y_ref);
          const std::string name = "layer " + std::to_string(layer) + " experts " + join(g.linears);
          ScaleResult r = search_scales_loss(
              ls, x_mean,
              [&] {
                run(y);
                return mse(y_ref, y);
              },
              opt.search, name);
          report_group("experts " + join(g.linears), r);
          moe_found.push_back({-1, std::move(r.scales)});
          AWQ_TRY(check_cancel(opt));
          continue;
        }
        if (g.experts) {
          // each expert's up -> down, on the calibration tokens routed to it
          phase("grid experts " + g.prev_linear + "->" + join(g.linears));
          const int I = cfg.moe_intermediate;
          for (int e = 0; e < cfg.n_experts; ++e) {
            rep.experts.push_back({layer, e, m_exp.tokens(e)});
            const std::vector<float>& xin = rec.moe.down_in[e];
            const int64_t ne = (int64_t)xin.size() / I;
            if (m_exp.tokens(e) == 0 || ne == 0) {
              const std::string note = "layer " + std::to_string(layer) + " expert " +
                                       std::to_string(e) +
                                       ": no calibration tokens routed to it; quantized without "
                                       "its up->down scale and without clipping";
              rep.warnings.push_back(note);
              continue;
            }
            Linear* l = &b.experts[e].linear(g.linears[0]);
            auto run = [&, l](std::vector<float>& y) {
              y.resize((size_t)ne * l->out);
              linear_forward(*l, xin.data(), ne, y.data());
            };
            std::vector<float> y_ref, y;
            run(y_ref);
            const std::string group = "experts." + std::to_string(e) + "." + join(g.linears);
            ScaleResult r = search_scales_loss(
                {l}, m_exp.mean(e),
                [&] {
                  run(y);
                  return mse(y_ref, y);
                },
                opt.search, "layer " + std::to_string(layer) + " " + group);
            report_group(group, r);
            moe_found.push_back({e, std::move(r.scales)});
            AWQ_TRY(check_cancel(opt));
          }
          if (shared) {  // the shared expert's up -> down, on every token
            Linear* l = &b.shared.linear(g.linears[0]);
            auto run = [&, l](std::vector<float>& y) {
              y.resize((size_t)n_tok * l->out);
              for (int sb = 0; sb < n_search && !cancelled(opt); ++sb)
                linear_forward(*l, rec.down_in.data() + (size_t)sb * T * S, T,
                               y.data() + (size_t)sb * T * l->out);
            };
            std::vector<float> y_ref, y;
            run(y_ref);
            const std::string group = "shared_expert." + join(g.linears);
            ScaleResult r = search_scales_loss(
                {l}, m_down.mean(),
                [&] {
                  run(y);
                  return mse(y_ref, y);
                },
                opt.search, "layer " + std::to_string(layer) + " " + group);
            report_group(group, r);
            moe_found.push_back({-2, std::move(r.scales)});
            AWQ_TRY(check_cancel(opt));
          }
          continue;
        }
        std::vector<Linear*> ls;
        for (const auto& n : g.linears) ls.push_back(&b.linear(n));
        std::vector<int> tie;  // GQA v -> o: o_proj input channel -> v output channel
        if (g.requires_same_shape && g.prev_kind == ScaleGroup::Prev::Linear) {
          const Linear& prev = b.linear(g.prev_linear);
          if (prev.out != ls[0]->out || prev.in != ls[0]->in) {
            const int hd = cfg.head_dim;
            const bool gqa = prev.out == cfg.n_kv_heads * hd && ls[0]->in == cfg.n_heads * hd;
            if (!opt.gqa_o_scaling || !gqa) continue;  // the reference skips v -> o here
            tie = gqa_o_tie(cfg);
          }
        }
        const Input in = input_of(g.linears[0]);
        const std::vector<float>& xin = record_of(rec, in);
        const std::vector<float> x_mean = (in == Input::Attn ? m_attn
                                           : in == Input::O  ? m_o
                                           : in == Input::Mlp ? m_mlp : m_down).mean();
        std::function<void(std::vector<float>&)> run;
        if (g.compare == ScaleGroup::Compare::Attention) {
          run = [&](std::vector<float>& y) {
            y.resize((size_t)n_tok * H);
            for (int sb = 0; sb < n_search && !cancelled(opt); ++sb)
              attention_forward(cfg, b, rope, xin.data() + (size_t)sb * T * H, 1, T,
                                y.data() + (size_t)sb * T * H);
          };
        } else if (g.compare == ScaleGroup::Compare::Mlp) {
          run = [&](std::vector<float>& y) {
            y.resize((size_t)n_tok * H);
            for (int sb = 0; sb < n_search && !cancelled(opt); ++sb)
              mlp_forward(cfg, b, xin.data() + (size_t)sb * T * H, T, y.data() + (size_t)sb * T * H);
          };
        } else {
          Linear* l = ls[0];
          run = [&, l](std::vector<float>& y) {
            y.resize((size_t)n_tok * l->out);
            for (int sb = 0; sb < n_search && !cancelled(opt); ++sb)
              linear_forward(*l, xin.data() + (size_t)sb * T * l->in, T,
                             y.data() + (size_t)sb * T * l->out);
          };
        }
        const std::string name = "layer " + std::to_string(layer) + " " + join(g.linears);
        phase("grid " + join(g.linears));
        PrepareFn prep;
        if (opt.clip_aware_search && clip_gram) {
          const GramLoss* gm = &gram_of(in);
          SearchOptions co = opt.search;
          co.clip_mode = co.grid_clip_mode;  // per-group picks (Joint's sweeps: 3x the work)
          co.clip_pair_stride = co.grid_clip_pair_stride;
          prep = [&, gm, co](int j, Linear& l, const std::vector<float>& s) {
            if (clipped(g.linears[j])) search_and_apply_clip_gram(l, *gm, &s, co);
          };
        }
        // GGUF block types: every ratio is scored with the ggml quantizer the file gets,
        // weighted by the statistics of the scaled inputs x / s.
        SearchOptions so = opt.search;
        if (gguf_out && !plain_gguf) {
          const ChannelMean* qs = in == Input::Attn ? &q_attn
                                    : in == Input::O  ? &q_o
                                    : in == Input::Mlp ? &q_mlp : &q_down;
          // each linear's own type (the mixtures differ within a group: q/k vs v)
          std::vector<std::pair<const Linear*, GGMLType>> types;
          for (size_t j = 0; j < ls.size(); ++j)
            types.emplace_back(ls[j], gguf_tensor_type(
                                          opt.gguf_type,
                                          gguf_linear_name(cfg, cfg.arch->linear_prefix(layer, g.linears[j])),
                                          cfg.n_layers, ls[j]->in, cfg.tie_embeddings, true));
          so.quantizer = [qs, types](const Linear& l, float* W, int N, int K,
                                     const std::vector<float>& s) {
            GGMLType gt = types[0].second;
            for (const auto& [lp, t] : types)
              if (lp == &l) gt = t;
            const std::vector<float> imp = qs->mean_scaled(s);
            fake_quantize_ggml(gt, W, N, K, imp.data());
          };
        }
        ScaleResult r;
        if (g.compare == ScaleGroup::Compare::Linear && opt.gram_loss) {
          const GramLoss& gram = gram_of(in);
          const Linear* l = ls[0];
          const std::vector<float> orig = l->weight;
          r = search_scales_loss(ls, x_mean, [&] { return gram(*l, orig); }, so, name,
                                 tie.empty() ? nullptr : &tie, prep);
        } else {
          std::vector<float> y_ref, y;
          run(y_ref);
          r = search_scales_loss(
              ls, x_mean,
              [&] {
                run(y);
                return mse(y_ref, y);
              },
              so, name, tie.empty() ? nullptr : &tie, prep);
        }
        report_group(join(g.linears), r);
        std::vector<float> s_prev =
            tie.empty() ? r.scales : untie_scales(r.scales, tie, b.linear(g.prev_linear).out);
        found.push_back({&g, std::move(r.scales), std::move(s_prev)});
        AWQ_TRY(check_cancel(opt));
      }
      std::vector<float> in_scale[4];  // per Input: the scales its recorded inputs were divided by
      for (auto& f : moe_found) {
        if (f.expert == -1) {
          apply_scales_to_norm(b.mlp_norm, f.s);
          apply_scales_to_linear(b.router, f.s);  // router(x / s) with columns * s = router(x)
          for (auto& ex : b.experts) {
            apply_scales_to_linear(ex.gate, f.s);
            apply_scales_to_linear(ex.up, f.s);
          }
          if (shared) {  // and the shared expert, whose gate linear is compensated likewise
            apply_scales_to_linear(b.shared.gate, f.s);
            apply_scales_to_linear(b.shared.up, f.s);
            apply_scales_to_linear(b.shared_gate, f.s);
          }
          divide_inputs(rec.mlp_in, H, f.s);
          in_scale[(int)Input::Mlp] = f.s;
        } else if (f.expert == -2) {
          apply_scales_to_prev_linear(b.shared.up, f.s);
          apply_scales_to_linear(b.shared.down, f.s);
          divide_inputs(rec.down_in, S, f.s);
          in_scale[(int)Input::Down] = f.s;
        } else {
          ExpertWeights& ex = b.experts[f.expert];
          apply_scales_to_prev_linear(ex.up, f.s);
          apply_scales_to_linear(ex.down, f.s);
          divide_inputs(rec.moe.down_in[f.expert], cfg.moe_intermediate, f.s);
        }
      }
      for (auto& f : found) {
        const ScaleGroup& g = *f.g;
        in_scale[(int)input_of(g.linears[0])] = f.s;
        switch (g.prev_kind) {
          case ScaleGroup::Prev::AttnNorm: apply_scales_to_norm(b.attn_norm, f.s); break;
          case ScaleGroup::Prev::MlpNorm: apply_scales_to_norm(b.mlp_norm, f.s); break;
          case ScaleGroup::Prev::Linear:
            apply_scales_to_prev_linear(b.linear(g.prev_linear), f.s_prev);
            break;
        }
        for (const auto& n : g.linears) apply_scales_to_linear(b.linear(n), f.s);
        const Input in = input_of(g.linears[0]);
        divide_inputs(record_of(rec, in), b.linear(g.linears[0]).in, f.s);
      }
      if (gguf_out) {  // the inputs the scaled weights see: x / s
        importance[(int)Input::Attn] = q_attn.mean_scaled(in_scale[(int)Input::Attn]);
        importance[(int)Input::O] = q_o.mean_scaled(in_scale[(int)Input::O]);
        importance[(int)Input::Mlp] = q_mlp.mean_scaled(in_scale[(int)Input::Mlp]);
        if (!moe) importance[(int)Input::Down] = q_down.mean_scaled(in_scale[(int)Input::Down]);
      }
      // 3. clipping
      if (opt.search.clip) {
        phase("clip");
        int n_done = 0;
        for (const LinearName& ln : cfg.arch->linears) {
          const std::string& n = ln.name;
          report_phase_fraction((double)n_done++ / (double)cfg.arch->linears.size());
          AWQ_TRY(check_cancel(opt));
          if (!clipped(n)) continue;
          const Input in = input_of(n);
          const std::vector<float>& s = in_scale[(int)in];
          const ClipResult cr =
              clip_gram ? search_and_apply_clip_gram(b.linear(n), gram_of(in),
                                                     s.empty() ? nullptr : &s, opt.search)
                        : search_and_apply_clip(b.linear(n), record_of(rec, in).data(), n_tok,
                                                opt.search);
          rep.clips.push_back({layer, n, cr.err_before, cr.err_after});
        }
        // MoE experts: each linear on the tokens routed to its expert (sampled search; an
        // expert's Gram matrices would be n_experts times the dense model's)
        for (int e = 0; moe && e < cfg.n_experts; ++e) {
          AWQ_TRY(check_cancel(opt));
          const std::vector<int32_t>& rows = rec.moe.rows[e];
          if (rows.empty()) continue;
          std::vector<float> xe(rows.size() * (size_t)H);
          for (size_t i = 0; i < rows.size(); ++i)
            std::memcpy(xe.data() + i * H, rec.mlp_in.data() + (size_t)rows[i] * H,
                        sizeof(float) * H);
          ExpertWeights& ex = b.experts[e];
          for (const char* n : {"gate_proj", "up_proj", "down_proj"}) {
            const std::string prefix = cfg.arch->expert_prefix(layer, e, n);
            if (not_converted(not_convert, prefix)) continue;
            const bool down = std::string(n) == "down_proj";
            const ClipResult cr = search_and_apply_clip(
                ex.linear(n), down ? rec.moe.down_in[e].data() : xe.data(),
                (int64_t)rows.size(), opt.search);
            rep.clips.push_back({layer, "experts." + std::to_string(e) + "." + n, cr.err_before,
                                 cr.err_after});
          }
        }
        for (const char* n : {"gate_proj", "up_proj", "down_proj"}) {  // the shared expert
          if (!shared) break;
          AWQ_TRY(check_cancel(opt));
          if (not_converted(not_convert, cfg.arch->shared_prefix(layer, n))) continue;
          const bool down = std::string(n) == "down_proj";
          const ClipResult cr = search_and_apply_clip(
              b.shared.linear(n), down ? rec.down_in.data() : rec.mlp_in.data(), n_tok, opt.search);
          rep.clips.push_back({layer, std::string("shared_expert.") + n, cr.err_before,
                               cr.err_after});
        }
      }
      AWQ_TRY(check_cancel(opt));
      phase("write");
    }
    // 4. quantize and write the block
    const std::string lp = "model.layers." + std::to_string(layer) + ".";
    for (const NormName& nn : cfg.arch->block_norms) {  // stored form: w, not 1 + w (Gemma)
      const std::vector<float> w = stored_norm(cfg, b.norm(nn.slot));
      AWQ_TRY(add_fp16(lp + nn.hf, {(int64_t)w.size()}, w.data()));
    }
    // Modules as the checkpoint stores them: a linear alone, or the parts of a fused module
    // (Phi-3 qkv_proj / gate_up_proj) joined row-wise (model/arch.h FusedLinear).
    for (const LinearName& ln : cfg.arch->linears) {
      const std::string& n = ln.name;
      int part = 0;
      const FusedLinear* fl = cfg.arch->fused_of(n, &part);
      if (fl && part != 0) continue;  // written with part 0
      std::vector<const Linear*> ls;
      if (fl)
        for (const auto& pn : fl->parts) ls.push_back(&b.linear(pn));
      else
        ls.push_back(&b.linear(n));
      const std::string prefix = cfg.arch->linear_prefix(layer, n);
      const int K = ls[0]->in;
      int N = 0;
      bool has_bias = false;
      for (const Linear* l : ls) N += l->out, has_bias |= !l->bias.empty();
      std::vector<float> joined_w, joined_b;
      const float* W = ls[0]->weight.data();
      const float* B = ls[0]->bias.empty() ? nullptr : ls[0]->bias.data();
      if (ls.size() > 1) {
        for (const Linear* l : ls) {
          joined_w.insert(joined_w.end(), l->weight.begin(), l->weight.end());
          if (has_bias) {
            if (l->bias.empty()) joined_b.insert(joined_b.end(), l->out, 0.0f);
            else joined_b.insert(joined_b.end(), l->bias.begin(), l->bias.end());
          }
        }
        W = joined_w.data();
        B = has_bias ? joined_b.data() : nullptr;
      }
      rep.params_total += (double)K * N;
      if (not_converted(not_convert, prefix)) {
        AWQ_TRY(add_fp16(prefix + ".weight", {N, K}, W));
        if (B) AWQ_TRY(add_fp16(prefix + ".bias", {N}, B));
        continue;
      }
      rep.params_quantized += (double)K * N;
      if (gguf) {
        const std::vector<float>& imp = importance[(int)input_of(n)];
        AWQ_TRY(gguf->add_linear(prefix, W, N, K, imp.empty() ? nullptr : imp.data(), B));
        continue;
      }
      auto ql = quantize_linear(W, N, K, qc);
      if (!ql) return make_error(prefix, ": ", ql.error().message);
      AWQ_TRY(add_quantized(prefix, std::move(*ql), B));
      // every block has the same shapes: check vLLM loadability (awq kernels) once
      if (layer == 0 && opt.format == CheckpointFormat::AutoAwq) {
        const bool row_parallel = n == "o_proj" || n == "down_proj";
        for (auto& w : vllm_tp_warnings(prefix, K, N, qc, row_parallel)) {
          if (w.find("awq_marlin falls back") != std::string::npos) ++marlin_fallbacks;
          else rep.warnings.push_back(w);
        }
      }
    }
    // A bias-free MoE linear (an expert's, the shared expert's): fp16 when left unconverted,
    // else quantized.
    auto write_plain = [&](const std::string& prefix, const Linear& l) -> Status {
      rep.params_total += (double)l.in * l.out;
      if (not_converted(not_convert, prefix))
        return add_fp16(prefix + ".weight", {l.out, l.in}, l.weight.data());
      rep.params_quantized += (double)l.in * l.out;
      auto ql = quantize_linear(l.weight.data(), l.out, l.in, qc);
      if (!ql) return make_error(prefix, ": ", ql.error().message);
      return add_quantized(prefix, std::move(*ql), nullptr);
    };
    if (cfg.arch->moe) {  // router (fp16, never quantized), then every expert's linears
      const std::string rp = cfg.arch->router_prefix(layer);
      rep.params_total += (double)b.router.in * b.router.out;
      AWQ_TRY(add_fp16(rp + ".weight", {b.router.out, b.router.in}, b.router.weight.data()));
      for (int e = 0; e < cfg.n_experts; ++e)
        for (const char* n : {"gate_proj", "up_proj", "down_proj"}) {
          const Linear& l = b.experts[e].linear(n);
          const std::string prefix = cfg.arch->expert_prefix(layer, e, n);
          AWQ_TRY(write_plain(prefix, l));
          if (not_converted(not_convert, prefix)) continue;
          if (layer == 0 && e == 0 && opt.format == CheckpointFormat::AutoAwq)
            for (auto& w : vllm_tp_warnings(prefix, l.in, l.out, qc, std::string(n) == "down_proj")) {
              if (w.find("awq_marlin falls back") != std::string::npos) ++marlin_fallbacks;
              else rep.warnings.push_back(w);
            }
        }
      if (cfg.arch->has_shared_expert()) {  // its gate (fp16, never quantized), then its linears
        const std::string gp = cfg.arch->shared_gate_prefix(layer);
        rep.params_total += (double)b.shared_gate.in;
        AWQ_TRY(add_fp16(gp + ".weight", {1, b.shared_gate.in}, b.shared_gate.weight.data()));
        for (const char* n : {"gate_proj", "up_proj", "down_proj"})
          AWQ_TRY(write_plain(cfg.arch->shared_prefix(layer, n), b.shared.linear(n)));
      }
    }
    if (keep_state) {  // the block is complete: save it for --resume
      nlohmann::json& j = recorded.report;
      const nlohmann::json e = report_entries_json(
          rep, {n_groups_before, n_clips_before, n_warn_before, n_experts_before});
      for (const char* k : {"groups", "clips", "warnings", "experts"}) j[k] = e[k];
      j["params_total"] = rep.params_total - params_total_before;
      j["params_quantized"] = rep.params_quantized - params_quantized_before;
      j["marlin_fallbacks"] = marlin_fallbacks - marlin_before;
      static const std::vector<float> none;
      AWQ_TRY(check_cancel(opt));
      AWQ_TRY(resume.save_block(layer, recorded, awq && layer + 1 < cfg.n_layers ? x : none,
                                fingerprint));
    }
    if (!measured) {
      phase("");  // closes the last phase's timing
      measured = true;
    }
    close_phase(std::chrono::steady_clock::now());  // "write" includes the resume state
    if (opt.on_progress) opt.on_progress(layer + 1, cfg.n_layers);
  }
  if (marlin_fallbacks > 0)
    rep.warnings.push_back(std::to_string(marlin_fallbacks) +
                           " (layer, tensor-parallel size) combinations do not meet vLLM's "
                           "awq_marlin shape rules (input % 128, output % 64 per shard) and would "
                           "use the slower awq kernel");
  AWQ_TRY(check_cancel(opt));
  {
    AWQ_ASSIGN(std::vector<float> norm, st.to_f32("model.norm.weight", {H}));
    AWQ_TRY(put_plain("model.norm.weight", {H}, norm.data()));
    if (st.find("lm_head.weight")) {
      AWQ_ASSIGN(std::vector<float> head, st.to_f32("lm_head.weight", {cfg.vocab, H}));
      AWQ_TRY(put_plain("lm_head.weight", {cfg.vocab, H}, head.data()));
    }
  }
  if (gguf) {
    AWQ_TRY(gguf->finish(src_files_dir));
    for (const auto& n : gguf->notes()) std::fprintf(stderr, "note: %s\n", n.c_str());
  } else {
    AWQ_TRY(ckpt->finish(src_files_dir, cfg.json_text, not_convert));
  }
  prog.finish();
  if (keep_state || opt.resume) resume.remove();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  rep.gemm_flop = (double)(flops_done() - flops_start);
  return rep;
}

// An interrupted run that saved blocks says how to continue it.
Expected<QuantizeReport> with_resume_hint(Expected<QuantizeReport> r, const std::string& out_dir) {
  if (r.ok() || r.error().message.find("interrupted") == std::string::npos) return r;
  std::string out_norm = fs::path(out_dir).lexically_normal().string();
  while (out_norm.size() > 1 && out_norm.back() == '/') out_norm.pop_back();
  ResumeState rs(out_norm + ".resume");
  if (!rs.exists()) return r;
  return make_error(r.error().message, "; no output written; the completed blocks are saved in ",
                    rs.dir(), ": rerun with the same arguments and --resume to continue");
}

}  // namespace

Expected<QuantizeReport> quantize_model(const std::string& model, const std::string& out_dir,
                                        const QuantizeOptions& opt) {
  if (model.size() > 5 && model.substr(model.size() - 5) == ".gguf") {
    // GGUF input: convert to a temporary fp32 HF directory next to the output.
    const fs::path out_abs = fs::absolute(out_dir);
    const std::string tmp =
        (out_abs.parent_path() / (out_abs.filename().string() + ".gguf-src-" +
                                  std::to_string(getpid())))
            .string();
    ConvertOptions co;
    co.progress = false;
    Status cs = convert_gguf_to_hf(model, tmp, co);
    std::error_code ec;
    if (!cs.ok()) {
      fs::remove_all(tmp, ec);
      return cs.error();
    }
    auto r = with_resume_hint(quantize_hf(tmp, tmp, out_dir, model, opt), out_dir);
    fs::remove_all(tmp, ec);
    return r;
  }
  return with_resume_hint(quantize_hf(model, model, out_dir, model, opt), out_dir);
}

nlohmann::json report_entries_json(const QuantizeReport& r, const ReportRange& from) {
  nlohmann::json j = {{"groups", nlohmann::json::array()}, {"clips", nlohmann::json::array()},
                      {"warnings", nlohmann::json::array()}, {"experts", nlohmann::json::array()}};
  for (size_t i = from.groups; i < r.groups.size(); ++i) {
    const GroupReport& g = r.groups[i];
    nlohmann::json losses = nlohmann::json::array();
    for (double v : g.losses) losses.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json());
    j["groups"].push_back({{"layer", g.layer}, {"group", g.group}, {"best_index", g.best_index},
                           {"loss_best", g.loss_best}, {"loss_identity", g.loss_identity},
                           {"fallback", g.fallback}, {"losses", std::move(losses)}});
  }
  for (size_t i = from.clips; i < r.clips.size(); ++i) {
    const ClipReport& c = r.clips[i];
    j["clips"].push_back({{"layer", c.layer}, {"linear", c.linear}, {"err_before", c.err_before},
                          {"err_after", c.err_after}});
  }
  for (size_t i = from.warnings; i < r.warnings.size(); ++i) j["warnings"].push_back(r.warnings[i]);
  for (size_t i = from.experts; i < r.experts.size(); ++i)
    j["experts"].push_back({r.experts[i].layer, r.experts[i].expert, r.experts[i].tokens});
  return j;
}

nlohmann::json report_to_json(const QuantizeReport& r) {
  nlohmann::json j = {{"seconds", r.seconds},           {"gemm_flop", r.gemm_flop},
                      {"calib_blocks", r.n_blocks},     {"calib_tokens", r.calib_tokens},
                      {"samples_used", r.samples_used}, {"phases", nlohmann::json::array()}};
  for (const PhaseReport& p : r.phases)
    j["phases"].push_back({{"name", p.name}, {"seconds", p.seconds}, {"gemm_flop", p.gemm_flop},
                           {"blocks", p.blocks}});
  j.update(report_entries_json(r));
  return j;
}

}  // namespace awq
