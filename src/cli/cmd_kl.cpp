// awq kl BASE QUANT FILE: KL(P_base || P_quant) per token, same windows as `awq ppl`.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/cancel.h"
#include "core/mmap_file.h"
#include "core/threads.h"
#include "eval/kl.h"
#include "io/tokenizer.h"
#include "model/weights.h"

namespace awq::cli {
namespace {

struct KlArgs {
  std::string base, quant, file, protocol = "autoawq";
  int ctx = 512, max_windows = -1, threads = 0;
  bool json = false, no_w4 = false, per_layer = false;
};

int run_kl(const KlArgs& a) {
  set_num_threads(a.threads);
  auto proto = parse_protocol(a.protocol);
  if (!proto) return fail(proto.error());
  auto tok = Tokenizer::load(a.base);
  if (!tok) return fail(tok.error());
  auto text = read_text_file(a.file);
  if (!text) return fail(text.error());
  const std::vector<int32_t> ids = tok->encode(*text, true);
  // KL uses the exact lm_head (lm_head_forward), so no 8-bit head is built.
  auto base = load_model(a.base, LoadOptions{.keep_w4 = true, .lm_head = LmHeadFormat::F16});
  if (!base) return fail(base.error());
  auto quant =
      load_model(a.quant, LoadOptions{.keep_w4 = !a.no_w4, .lm_head = LmHeadFormat::F16});
  if (!quant) return fail(quant.error());
  for (int32_t t : ids)
    if (t >= base->cfg.vocab || t >= quant->cfg.vocab)
      return fail("token id " + std::to_string(t) + " of the text is outside a model's vocabulary");
  KlOptions opt;
  opt.ctx = a.ctx;
  opt.protocol = *proto;
  opt.max_windows = a.max_windows;
  opt.progress = true;  // on stderr, so --json (stdout) still shows it
  install_cancel_handlers();  // loading writes nothing: until here a signal simply ends us
  auto r = kl_divergence(*base, *quant, ids, opt);
  if (!r) return fail(r.error());
  if (a.json) {
    nlohmann::json j = {{"mean_kl", r->mean_kl},        {"kl_stderr", r->kl_stderr},
                        {"top1_agree", r->top1_agree},  {"ppl_base", r->ppl_base},
                        {"ppl_quant", r->ppl_quant},    {"tokens_scored", r->tokens_scored},
                        {"windows", r->windows},        {"ctx", a.ctx},
                        {"protocol", protocol_name(*proto)}, {"seconds", r->seconds},
                        {"base", a.base},               {"quant", a.quant},
                        {"file", a.file},               {"block_rel_err", r->block_rel_err}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("protocol %s, ctx %d, %d windows, %lld tokens scored\n", protocol_name(*proto),
                a.ctx, r->windows, (long long)r->tokens_scored);
    std::printf("mean KL = %.6f +/- %.6f nats\n", r->mean_kl, r->kl_stderr);
    std::printf("top-1 agreement = %.2f %%\n", 100.0 * r->top1_agree);
    std::printf("PPL base = %.4f, PPL quant = %.4f\n", r->ppl_base, r->ppl_quant);
    if (a.per_layer) {
      std::printf("block  relative error of the residual stream ||h_q - h||^2 / ||h||^2\n");
      for (size_t l = 0; l < r->block_rel_err.size(); ++l)
        std::printf("%5zu  %.6e\n", l, r->block_rel_err[l]);
    }
  }
  return 0;
}

Register reg("kl", "KL divergence of a quantized model from its base model on a text file",
             [](CLI::App& sub) {
  auto a = std::make_shared<KlArgs>();
  sub.add_option("base", a->base, "base model directory")->required();
  sub.add_option("quant", a->quant, "quantized model directory")->required();
  sub.add_option("file", a->file, "text file")->required()->check(CLI::ExistingFile);
  sub.add_option("--ctx", a->ctx, "window size in tokens")->capture_default_str();
  sub.add_option("--protocol", a->protocol, "autoawq or llamacpp (see awq ppl)")->capture_default_str();
  sub.add_option("--max-windows", a->max_windows, "evaluate at most N windows");
  sub.add_option("--threads,-t", a->threads, "threads (0 = all)");
  sub.add_flag("--no-w4", a->no_w4, "dequantize the quantized model to fp32");
  sub.add_flag("--json", a->json, "print one JSON object");
  sub.add_flag("--per-layer", a->per_layer,
               "print the residual-stream error after every block (JSON: block_rel_err)");
  return [a]() { return run_kl(*a); };
});

}  // namespace
}  // namespace awq::cli
