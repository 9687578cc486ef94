// awq quantize MODEL OUT_DIR: AWQ (or RTN) quantization to an AutoAWQ GEMM checkpoint.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/cancel.h"
#include "core/threads.h"
#include "quant/gguf_export.h"
#include "quant/quantize.h"

namespace awq::cli {
namespace {

// An on/off flag pair --NAME / --no-NAME with the real default in --help. (CLI11's
// "--x,!--no-x" spelling prints "{false}" beside every such flag, the value --no-x sets, which
// reads as "off" for flags that are on by default.)
void on_off_flag(CLI::App& sub, const std::string& name, bool& v, const std::string& desc) {
  const bool def = v;
  sub.add_flag_function("--" + name, [&v](int64_t) { v = true; },
                        desc + (def ? " (default: on)" : " (default: off)"));
  sub.add_flag_function("--no-" + name, [&v](int64_t) { v = false; }, "turn --" + name + " off");
}

struct QArgs {
  std::string model, out, method = "awq", calib, format = "autoawq", report, clip = "joint";
  std::string gguf_type = "q4_0";
  int w_bit = 4, group_size = 128, n_samples = 128, seqlen = 512, threads = 0, search_blocks = 16;
  int n_grid = SearchOptions{}.n_grid;
  int grid_stride = SearchOptions{}.grid_stride;
  int clip_pair_stride = SearchOptions{}.clip_pair_stride;
  bool clip_aware = true;
  std::string grid_clip = grid_clip_name(SearchOptions{});
  bool zero_point = true, no_clip = false, no_duo = false, overwrite = false;
  bool gram_loss = true, gqa_o_scale = false, resume = false, resume_state = true;
  std::vector<std::string> not_convert;
};

int run_quantize(const QArgs& a) {
  set_num_threads(a.threads);
  QuantizeOptions o;
  auto fmt = parse_checkpoint_format(a.format);
  if (!fmt) return fail("--format: " + fmt.error().message);
  o.format = *fmt;
  o.search.q.w_bit = a.w_bit;
  o.search.q.group_size = a.group_size;
  o.search.q.zero_point = a.zero_point;
  if (o.format == CheckpointFormat::Gguf) {
    auto t = parse_gguf_type(a.gguf_type);
    if (!t) return fail("--gguf-type: " + t.error().message);
    o.gguf_type = *t;
    // Block types: the search quantizes as the type does (its bits, 32-weight blocks, zero
    // point or not); explicit --w-bit/--group-size/--zero-point that disagree are refused.
    int wb, gs;
    bool zp;
    if (gguf_search_config(*t, &wb, &gs, &zp)) {
      const QArgs def;
      if ((a.w_bit != def.w_bit && a.w_bit != wb) || (a.group_size != def.group_size && a.group_size != gs) ||
          (a.zero_point != def.zero_point && a.zero_point != zp))
        return fail("--gguf-type " + a.gguf_type + " quantizes " + std::to_string(wb) + "-bit in groups of " +
                    std::to_string(gs) + (zp ? " with" : " without") +
                    " a zero point; drop --w-bit/--group-size/--zero-point");
      o.search.q.w_bit = wb;
      o.search.q.group_size = gs;
      o.search.q.zero_point = zp;
    }
  }
  o.search.clip = !a.no_clip;
  o.search.duo_scaling = !a.no_duo;
  if (a.n_grid < 1) return fail("--n-grid must be at least 1 (1 = identity scales only)");
  o.search.n_grid = a.n_grid;
  if (a.grid_stride < 1) return fail("--grid-stride must be at least 1 (1 = every ratio)");
  o.search.grid_stride = a.grid_stride;
  if (a.clip_pair_stride < 1) return fail("--clip-pair-stride must be at least 1 (1 = every pair)");
  o.search.clip_pair_stride = a.clip_pair_stride;
  set_grid_clip(o.search, a.grid_clip);  // checked by CLI11 against kGridClipNames
  if (a.clip == "sampled") o.search.clip_mode = SearchOptions::ClipMode::Sampled;
  else if (a.clip == "gram") o.search.clip_mode = SearchOptions::ClipMode::Gram;
  else if (a.clip == "gram-asym") o.search.clip_mode = SearchOptions::ClipMode::GramAsym;
  else if (a.clip == "joint") o.search.clip_mode = SearchOptions::ClipMode::Joint;
  else return fail("--clip " + a.clip + " is not supported (expected sampled, gram, gram-asym or joint)");
  if (a.method == "awq") o.method = QuantizeOptions::Method::Awq;
  else if (a.method == "rtn") o.method = QuantizeOptions::Method::Rtn;
  else return fail("--method " + a.method + " is not supported (expected awq or rtn)");
  o.calib_path = a.calib;
  o.n_samples = a.n_samples;
  o.seqlen = a.seqlen;
  o.search_blocks = a.search_blocks;
  o.gram_loss = a.gram_loss;
  o.clip_aware_search = a.clip_aware;
  o.gqa_o_scaling = a.gqa_o_scale;
  o.modules_to_not_convert = a.not_convert;
  o.overwrite = a.overwrite;
  o.resume = a.resume;
  o.resume_state = a.resume_state;
  install_cancel_handlers();  // SIGINT/SIGTERM: stop within a second or two, no output left
  auto r = quantize_model(a.model, a.out, o);
  if (!r) return fail(r.error());
  for (const auto& w : r->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  const QuantConfig& q = o.search.q;
  std::printf("wrote %s (%s w%d g%d%s%s) in %.1f s; calibration %d blocks x %d tokens\n",
              a.out.c_str(), a.method.c_str(), q.w_bit, q.group_size, q.zero_point ? " zp" : " sym",
              o.format == CheckpointFormat::Gguf ? (", GGUF " + o.gguf_type.name()).c_str() : "",
              r->seconds, r->n_blocks, a.seqlen);
  std::printf("matrix-product work: %.2f TFLOP, %.1f GFLOP/s over the whole run\n",
              r->gemm_flop * 1e-12, r->seconds > 0 ? r->gemm_flop / r->seconds * 1e-9 : 0.0);
  for (const PhaseReport& p : r->phases)
    std::printf("  %-28s %8.1f s  %7.2f TFLOP  %6.1f GFLOP/s\n", p.name.c_str(), p.seconds,
                p.gemm_flop * 1e-12, p.seconds > 0 ? p.gemm_flop / p.seconds * 1e-9 : 0.0);
  if (!a.report.empty()) {
    const nlohmann::json j = report_to_json(*r);
    FILE* f = std::fopen(a.report.c_str(), "w");
    if (!f) return fail("--report: cannot write " + a.report);
    std::fprintf(f, "%s\n", j.dump(1).c_str());
    std::fclose(f);
  }
  return 0;
}

Register reg("quantize", "quantize a model (HF dir or .gguf) to an AutoAWQ or compressed-tensors checkpoint",
             [](CLI::App& sub) {
  auto a = std::make_shared<QArgs>();
  sub.add_option("model", a->model, "HF model directory or .gguf file")->required();
  sub.add_option("out_dir", a->out, "output directory (--format gguf: the .gguf file)")->required();
  sub.add_option("--w-bit", a->w_bit, "weight bits (4; also 3, 8)")->capture_default_str();
  sub.add_option("--group-size", a->group_size, "group size (32, 64, 128; -1 = per channel)")
      ->capture_default_str();
  on_off_flag(sub, "zero-point", a->zero_point, "asymmetric with zero point (off: symmetric)");
  sub.add_option("--method", a->method, "awq or rtn")->capture_default_str();
  sub.add_flag("--no-clip", a->no_clip, "skip the clipping search");
  sub.add_option("--clip", a->clip,
                 "clipping search: sampled (reference: +-max shrink, 512 sampled tokens), gram "
                 "(exact on all tokens), gram-asym (gram; max and min shrunk separately), joint (gram-asym "
                 "picks refined for the whole row's error, cross-group terms included)")
      ->capture_default_str();
  sub.add_option("--clip-pair-stride", a->clip_pair_stride,
                 "final clip (gram-asym, joint): the (max, min) shrink pairs on every k-th step "
                 "(1: all 100; 2: 25, 2x faster clip but +6 % dPPL on SmolLM2 W4, docs/RESULTS.md)")
      ->capture_default_str();
  on_off_flag(sub, "clip-aware-search", a->clip_aware,
               "score each scale ratio with the clipping search applied (off: clip only after "
               "the grid search, as the reference does)");
  sub.add_option("--grid-clip", a->grid_clip,
                 "clipping search run on each grid ratio by --clip-aware-search: asym (10 "
                 "symmetric shrinks + all 100 (max, min) pairs per group), coarse (10 + 25 pairs "
                 "on every other step: 3x less work) or sym (the 10 symmetric: 11x less); the "
                 "final clip is --clip")
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(kGridClipNames), std::end(kGridClipNames))))
      ->capture_default_str();
  sub.add_flag("--no-duo-scaling", a->no_duo, "scales from activations only");
  sub.add_option("--n-grid", a->n_grid,
                 "scale ratios searched per group, 0/n .. (n-1)/n (1: ratio 0 only, which is "
                 "no AWQ scaling with --no-duo-scaling but s ~ 1/w_mean with duo scaling; "
                 "--n-grid 1 --no-duo-scaling --no-clip --format gguf: rounding weighted by the "
                 "activation statistics alone, an ablation)")
      ->capture_default_str();
  sub.add_option("--grid-stride", a->grid_stride,
                 "coarse-to-fine grid: score every k-th ratio, then the k-1 ratios on each side "
                 "of the best one (1: every ratio)")
      ->capture_default_str();
  sub.add_option("--calib", a->calib, "calibration text (.txt: blank-line separated; .jsonl)")
      ->check(CLI::ExistingFile);
  sub.add_option("--n-samples", a->n_samples, "calibration samples")->capture_default_str();
  sub.add_option("--seqlen", a->seqlen, "calibration block length")->capture_default_str();
  sub.add_option("--search-blocks", a->search_blocks,
                 "calibration blocks whose forward scores the scale grid (0 = all; activation "
                 "statistics, Gram losses and clipping always use every block)")
      ->capture_default_str();
  on_off_flag(sub, "gram-loss", a->gram_loss,
               "score v->o and up->down on all calibration tokens via X^T X (exact; fast)");
  on_off_flag(sub, "gqa-o-scale", a->gqa_o_scale,
               "GQA models: scale v->o with scales shared by the heads of a KV head");
  sub.add_option("--modules-to-not-convert", a->not_convert, "linear name substrings kept fp16");
  sub.add_option("--threads,-t", a->threads, "threads (0 = all)");
  sub.add_option("--format", a->format, "checkpoint format: autoawq (AutoAWQ GEMM; 4-bit zero-point only), compressed-tensors (llm-compressor pack-quantized; 2..8 bits, zero point or symmetric) or gguf (one llama.cpp file; see --gguf-type)")->capture_default_str();
  sub.add_option("--gguf-type", a->gguf_type,
                 "--format gguf: llama-quantize's type names: q4_0, q4_1, q5_0, q5_1, q8_0, "
                 "q4_k_s, q4_k_m (= q4_k), q5_k_s, q5_k_m (= q5_k), q6_k, with llama-quantize's "
                 "per-tensor choices and fallbacks (the AWQ search scores every ratio with each "
                 "tensor's own quantizer, the activation statistics weigh each block's rounding), "
                 "or f16/f32 (the AWQ-scaled, clipped model for llama-quantize)")
      ->capture_default_str();
  sub.add_option("--report", a->report, "write a JSON report (chosen ratios, losses)");
  sub.add_flag("--overwrite", a->overwrite, "replace OUT_DIR if it exists");
  sub.add_flag("--resume", a->resume,
               "continue an interrupted or killed run from its last completed block (same "
               "arguments; the saved state is OUT_DIR.resume)");
  on_off_flag(sub, "resume-state", a->resume_state,
              "save the state after every block in OUT_DIR.resume so that --resume can continue "
              "the run (removed when the run completes)");
  return [a]() { return run_quantize(*a); };
});

}  // namespace
}  // namespace awq::cli
