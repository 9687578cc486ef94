#include "quant/quantize.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/flops.h"
#include "core/progress.h"
#include "io/gguf_convert.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "model/forward.h"
#include "quant/awq_checkpoint.h"
#include "quant/awq_pack.h"
#include "quant/calibration.h"

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

// Accumulates mean |x| per channel over all calibration tokens (fp64 sums).
struct ChannelMean {
  std::vector<double> sum;
  int64_t n = 0;
  void add(const std::vector<float>& x, int width) {
    if (sum.empty()) sum.assign(width, 0.0);
    const int64_t rows = (int64_t)x.size() / width;
    for (int64_t t = 0; t < rows; ++t)
      for (int k = 0; k < width; ++k) sum[k] += std::fabs(x[(size_t)t * width + k]);
    n += rows;
  }
  std::vector<float> mean() const {
    std::vector<float> m(sum.size());
    for (size_t k = 0; k < sum.size(); ++k) m[k] = (float)(sum[k] / (double)n);
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

Status check_cancel(const QuantizeOptions& opt) {
  if (opt.cancel && opt.cancel->load()) return make_error("interrupted by a signal (SIGINT/SIGTERM); no output written");
  return Status::Ok();
}

Expected<QuantizeReport> quantize_hf(const std::string& model_dir, const std::string& src_files_dir,
                                     const std::string& out_dir, const QuantizeOptions& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  const uint64_t flops_start = flops_done();
  QuantizeReport rep;
  AWQ_ASSIGN(ModelConfig cfg, load_model_config(model_dir));
  if (cfg.quant.present)
    return make_error(model_dir, "/config.json: the model is already quantized (quant_method awq)");
  const QuantConfig& qc = opt.search.q;
  {
    const int ks[3] = {cfg.hidden, cfg.n_heads * cfg.head_dim, cfg.intermediate};
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

  AWQ_ASSIGN(AwqCheckpointWriter writer,
             AwqCheckpointWriter::create(out_dir, qc, opt.overwrite, opt.max_shard_bytes));
  // Embeddings: the input of block 0; stored fp16.
  std::vector<float> x((size_t)NB * T * H);
  {
    AWQ_ASSIGN(std::vector<float> embed, st.to_f32("model.embed_tokens.weight", {cfg.vocab, H}));
    for (size_t t = 0; t < calib.tokens.size(); ++t) {
      const int id = calib.tokens[t];
      if (id < 0 || id >= cfg.vocab)
        return make_error("calibration token id ", id, " outside the vocabulary (", cfg.vocab, ")");
      std::memcpy(x.data() + t * H, embed.data() + (size_t)id * H, sizeof(float) * H);
    }
    AWQ_TRY(writer.add_fp16("model.embed_tokens.weight", {cfg.vocab, H}, embed.data()));
  }
  Rope rope;
  if (awq) rope.build(cfg, T);
  int marlin_fallbacks = 0;
  Progress prog(opt.method == QuantizeOptions::Method::Awq ? "awq" : "rtn", cfg.n_layers, " blk");
  if (opt.progress) prog.update(0);
  if (opt.on_progress) opt.on_progress(0, cfg.n_layers);
  for (int layer = 0; layer < cfg.n_layers; ++layer) {
    AWQ_TRY(check_cancel(opt));
    auto bw = load_block(st, cfg, layer);
    if (!bw) return make_error(model_dir, ": layer ", layer, ": ", bw.error().message);
    BlockWeights& b = *bw;
    st.release_pages();  // the block is copied out: keep the mapped input's RSS at one block
    if (opt.method == QuantizeOptions::Method::Awq) {
      // 1. fp32 block on all calibration blocks (in chunks): record linear inputs of the
      //    search subset, accumulate mean |x| per channel, and advance x to the block output.
      BlockRecord rec;  // inputs of the first n_search blocks
      ChannelMean m_attn, m_o, m_mlp, m_down;
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
               !not_converted(opt.modules_to_not_convert, linear_prefix(layer, n));
      };
      for (int c0 = 0; c0 < NB; c0 += opt.chunk_blocks) {
        const int nb = std::min(opt.chunk_blocks, NB - c0);
        BlockRecord cr;
        block_forward(cfg, b, rope, x.data() + (size_t)c0 * T * H, nb, T, &cr);
        m_attn.add(cr.attn_in, H);
        m_o.add(cr.o_in, cfg.n_heads * cfg.head_dim);
        m_mlp.add(cr.mlp_in, H);
        m_down.add(cr.down_in, cfg.intermediate);
        if (gram_lin) {
          gram_o.add(cr.o_in.data(), (int64_t)nb * T);
          gram_down.add(cr.down_in.data(), (int64_t)nb * T);
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
          append(rec.down_in, cr.down_in);
        }
        AWQ_TRY(check_cancel(opt));
      }
      const int64_t n_tok = (int64_t)n_search * T;
      // 2. scale search for every group, from the original weights; then apply all.
      struct Found {
        const ScaleGroup* g;
        std::vector<float> s;       // per input channel of the group's linears
        std::vector<float> s_prev;  // per output channel of the previous op
      };
      std::vector<Found> found;
      for (const ScaleGroup& g : cfg.arch->scale_groups) {
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
            attention_forward(cfg, b, rope, xin.data(), n_search, T, y.data());
          };
        } else if (g.compare == ScaleGroup::Compare::Mlp) {
          run = [&](std::vector<float>& y) {
            y.resize((size_t)n_tok * H);
            mlp_forward(cfg, b, xin.data(), n_tok, y.data());
          };
        } else {
          Linear* l = ls[0];
          run = [&, l](std::vector<float>& y) {
            y.resize((size_t)n_tok * l->out);
            linear_forward(*l, xin.data(), n_tok, y.data());
          };
        }
        const std::string name = "layer " + std::to_string(layer) + " " + join(g.linears);
        PrepareFn prep;
        if (opt.clip_aware_search && clip_gram) {
          const GramLoss* gm = &gram_of(in);
          SearchOptions co = opt.search;
          if (co.clip_mode == SearchOptions::ClipMode::Joint)
            co.clip_mode = SearchOptions::ClipMode::GramAsym;  // the per-group picks: 3x cheaper
          prep = [&, gm, co](int j, Linear& l, const std::vector<float>& s) {
            if (clipped(g.linears[j])) search_and_apply_clip_gram(l, *gm, &s, co);
          };
        }
        ScaleResult r;
        if (g.compare == ScaleGroup::Compare::Linear && opt.gram_loss) {
          const GramLoss& gram = gram_of(in);
          const Linear* l = ls[0];
          const std::vector<float> orig = l->weight;
          r = search_scales_loss(ls, x_mean, [&] { return gram(*l, orig); }, opt.search, name,
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
              opt.search, name, tie.empty() ? nullptr : &tie, prep);
        }
        if (!r.note.empty()) {
          std::fprintf(stderr, "warning: %s\n", r.note.c_str());
          rep.warnings.push_back(r.note);
        }
        GroupReport gr;
        gr.layer = layer;
        gr.group = join(g.linears);
        gr.best_index = r.best_index;
        gr.loss_best = r.best_loss;
        gr.loss_identity = r.losses.empty() ? 0 : r.losses[0];
        gr.fallback = r.fallback;
        rep.groups.push_back(gr);
        std::vector<float> s_prev =
            tie.empty() ? r.scales : untie_scales(r.scales, tie, b.linear(g.prev_linear).out);
        found.push_back({&g, std::move(r.scales), std::move(s_prev)});
        AWQ_TRY(check_cancel(opt));
      }
      std::vector<float> in_scale[4];  // per Input: the scales its recorded inputs were divided by
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
      // 3. clipping
      if (opt.search.clip) {
        for (const auto& n : block_linear_names()) {
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
      }
    }
    // 4. quantize and write the block
    const std::string lp = "model.layers." + std::to_string(layer) + ".";
    AWQ_TRY(writer.add_fp16(lp + "input_layernorm.weight", {H}, b.attn_norm.data()));
    AWQ_TRY(writer.add_fp16(lp + "post_attention_layernorm.weight", {H}, b.mlp_norm.data()));
    for (const auto& n : block_linear_names()) {
      const Linear& l = b.linear(n);
      const std::string prefix = linear_prefix(layer, n);
      rep.params_total += (double)l.in * l.out;
      if (not_converted(opt.modules_to_not_convert, prefix)) {
        AWQ_TRY(writer.add_fp16(prefix + ".weight", {l.out, l.in}, l.weight.data()));
        if (!l.bias.empty()) AWQ_TRY(writer.add_fp16(prefix + ".bias", {l.out}, l.bias.data()));
        continue;
      }
      rep.params_quantized += (double)l.in * l.out;
      auto ql = quantize_linear(l.weight.data(), l.out, l.in, qc);
      if (!ql) return make_error(prefix, ": ", ql.error().message);
      AWQ_TRY(writer.add_quantized(prefix, *ql, l.bias.empty() ? nullptr : l.bias.data()));
      if (layer == 0) {  // every block has the same shapes: check vLLM loadability once
        const bool row_parallel = n == "o_proj" || n == "down_proj";
        for (auto& w : vllm_tp_warnings(prefix, l.in, l.out, qc, row_parallel)) {
          if (w.find("awq_marlin falls back") != std::string::npos) ++marlin_fallbacks;
          else rep.warnings.push_back(w);
        }
      }
    }
    if (opt.progress) prog.update(layer + 1);
    if (opt.on_progress) opt.on_progress(layer + 1, cfg.n_layers);
  }
  if (opt.progress) prog.finish();
  if (marlin_fallbacks > 0)
    rep.warnings.push_back(std::to_string(marlin_fallbacks) +
                           " (layer, tensor-parallel size) combinations do not meet vLLM's "
                           "awq_marlin shape rules (input % 128, output % 64 per shard) and would "
                           "use the slower awq kernel");
  AWQ_TRY(check_cancel(opt));
  {
    AWQ_ASSIGN(std::vector<float> norm, st.to_f32("model.norm.weight", {H}));
    AWQ_TRY(writer.add_fp16("model.norm.weight", {H}, norm.data()));
    if (st.find("lm_head.weight")) {
      AWQ_ASSIGN(std::vector<float> head, st.to_f32("lm_head.weight", {cfg.vocab, H}));
      AWQ_TRY(writer.add_fp16("lm_head.weight", {cfg.vocab, H}, head.data()));
    }
  }
  AWQ_TRY(writer.finish(src_files_dir, cfg.json_text, opt.modules_to_not_convert));
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  rep.gemm_flop = (double)(flops_done() - flops_start);
  return rep;
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
    AWQ_TRY(convert_gguf_to_hf(model, tmp, co));
    auto r = quantize_hf(tmp, tmp, out_dir, opt);
    std::error_code ec;
    fs::remove_all(tmp, ec);
    return r;
  }
  return quantize_hf(model, model, out_dir, opt);
}

}  // namespace awq
