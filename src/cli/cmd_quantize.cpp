// awq quantize MODEL OUT_DIR: AWQ (or RTN) quantization to an AutoAWQ GEMM checkpoint.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/cancel.h"
#include "core/threads.h"
#include "quant/quantize.h"

namespace awq::cli {
namespace {

struct QArgs {
  std::string model, out, method = "awq", calib, format = "autoawq", report, clip = "joint";
  int w_bit = 4, group_size = 128, n_samples = 128, seqlen = 512, threads = 0, search_blocks = 16;
  bool clip_aware = true;
  bool zero_point = true, no_clip = false, no_duo = false, overwrite = false;
  bool gram_loss = true, gqa_o_scale = false, resume = false, resume_state = true;
  std::vector<std::string> not_convert;
};

int run_quantize(const QArgs& a) {
  set_num_threads(a.threads);
  if (a.format != "autoawq")
    return fail("--format " + a.format + " is not supported (supported: autoawq)");
  QuantizeOptions o;
  o.search.q.w_bit = a.w_bit;
  o.search.q.group_size = a.group_size;
  o.search.q.zero_point = a.zero_point;
  o.search.clip = !a.no_clip;
  o.search.duo_scaling = !a.no_duo;
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
  std::printf("wrote %s (%s w%d g%d%s) in %.1f s; calibration %d blocks x %d tokens\n",
              a.out.c_str(), a.method.c_str(), a.w_bit, a.group_size,
              a.zero_point ? " zp" : " sym", r->seconds, r->n_blocks, a.seqlen);
  std::printf("matrix-product work: %.2f TFLOP, %.1f GFLOP/s over the whole run\n",
              r->gemm_flop * 1e-12, r->seconds > 0 ? r->gemm_flop / r->seconds * 1e-9 : 0.0);
  if (!a.report.empty()) {
    nlohmann::json j;
    j["seconds"] = r->seconds;
    j["gemm_flop"] = r->gemm_flop;
    j["calib_blocks"] = r->n_blocks;
    j["calib_tokens"] = r->calib_tokens;
    j["samples_used"] = r->samples_used;
    for (const auto& g : r->groups)
      j["groups"].push_back({{"layer", g.layer}, {"group", g.group}, {"best_index", g.best_index},
                             {"loss_best", g.loss_best}, {"loss_identity", g.loss_identity},
                             {"fallback", g.fallback}});
    for (const auto& c : r->clips)
      j["clips"].push_back({{"layer", c.layer}, {"linear", c.linear},
                            {"err_before", c.err_before}, {"err_after", c.err_after}});
    j["warnings"] = r->warnings;
    FILE* f = std::fopen(a.report.c_str(), "w");
    if (!f) return fail("--report: cannot write " + a.report);
    std::fprintf(f, "%s\n", j.dump(1).c_str());
    std::fclose(f);
  }
  return 0;
}

Register reg("quantize", "quantize a model (HF dir or .gguf) to an AutoAWQ checkpoint",
             [](CLI::App& sub) {
  auto a = std::make_shared<QArgs>();
  sub.add_option("model", a->model, "HF model directory or .gguf file")->required();
  sub.add_option("out_dir", a->out, "output directory")->required();
  sub.add_option("--w-bit", a->w_bit, "weight bits (4; also 3, 8)")->capture_default_str();
  sub.add_option("--group-size", a->group_size, "group size (32, 64, 128; -1 = per channel)")
      ->capture_default_str();
  sub.add_flag("--zero-point,!--no-zero-point", a->zero_point, "asymmetric with zero point");
  sub.add_option("--method", a->method, "awq or rtn")->capture_default_str();
  sub.add_flag("--no-clip", a->no_clip, "skip the clipping search");
  sub.add_option("--clip", a->clip,
                 "clipping search: sampled (reference: +-max shrink, 512 sampled tokens), gram "
                 "(exact on all tokens), gram-asym (gram; max and min shrunk separately), joint (gram-asym "
                 "picks refined for the whole row's error, cross-group terms included)")
      ->capture_default_str();
  sub.add_flag("--clip-aware-search,!--no-clip-aware-search", a->clip_aware,
               "score each scale ratio with the clipping search applied (default; off: clip only "
               "after the grid search, as the reference does)");
  sub.add_flag("--no-duo-scaling", a->no_duo, "scales from activations only");
  sub.add_option("--calib", a->calib, "calibration text (.txt: blank-line separated; .jsonl)")
      ->check(CLI::ExistingFile);
  sub.add_option("--n-samples", a->n_samples, "calibration samples")->capture_default_str();
  sub.add_option("--seqlen", a->seqlen, "calibration block length")->capture_default_str();
  sub.add_option("--search-blocks", a->search_blocks,
                 "calibration blocks whose forward scores the scale grid (0 = all; activation "
                 "statistics, Gram losses and clipping always use every block)")
      ->capture_default_str();
  sub.add_flag("--gram-loss,!--no-gram-loss", a->gram_loss,
               "score v->o and up->down on all calibration tokens via X^T X (exact; fast)")
      ->capture_default_str();
  sub.add_flag("--gqa-o-scale,!--no-gqa-o-scale", a->gqa_o_scale,
               "GQA models: scale v->o with scales shared by the heads of a KV head")
      ->capture_default_str();
  sub.add_option("--modules-to-not-convert", a->not_convert, "linear name substrings kept fp16");
  sub.add_option("--threads,-t", a->threads, "threads (0 = all)");
  sub.add_option("--format", a->format, "checkpoint format (autoawq)")->capture_default_str();
  sub.add_option("--report", a->report, "write a JSON report (chosen ratios, losses)");
  sub.add_flag("--overwrite", a->overwrite, "replace OUT_DIR if it exists");
  sub.add_flag("--resume", a->resume,
               "continue an interrupted or killed run from its last completed block (same "
               "arguments; the saved state is OUT_DIR.resume)");
  sub.add_flag("--resume-state,!--no-resume-state", a->resume_state,
               "save the state after every block in OUT_DIR.resume so that --resume can continue "
               "the run (default on; removed when the run completes)")
      ->capture_default_str();
  return [a]() { return run_quantize(*a); };
});

}  // namespace
}  // namespace awq::cli
