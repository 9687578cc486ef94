// awq ppl MODEL_DIR FILE: perplexity with a named protocol (docs/EVAL.md).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/cancel.h"
#include "core/mmap_file.h"
#include "core/threads.h"
#include "eval/perplexity.h"
#include "io/tokenizer.h"
#include "model/weights.h"

namespace awq::cli {
namespace {

struct PplArgs {
  std::string model, file, protocol = "autoawq";
  int ctx = 2048, max_windows = -1, threads = 0;
  bool json = false;
};

int run_ppl(const PplArgs& a) {
  set_num_threads(a.threads);
  auto proto = parse_protocol(a.protocol);
  if (!proto) return fail(proto.error());
  auto tok = Tokenizer::load(a.model);
  if (!tok) return fail(tok.error());
  auto text = read_text_file(a.file);
  if (!text) return fail(text.error());
  const std::vector<int32_t> ids = tok->encode(*text, true);
  // Perplexity uses the exact lm_head (lm_head_forward), so no 8-bit head is built.
  auto model = load_model(a.model, LoadOptions{.keep_w4 = true, .lm_head = LmHeadFormat::F16});
  if (!model) return fail(model.error());
  PplOptions opt;
  opt.ctx = a.ctx;
  opt.protocol = *proto;
  opt.max_windows = a.max_windows;
  opt.progress = true;  // on stderr, so --json (stdout) still shows it
  install_cancel_handlers();  // loading writes nothing: until here a signal simply ends us
  auto r = perplexity(*model, ids, opt);
  if (!r) return fail(r.error());
  const double tps = r->tokens_processed / std::max(1e-9, r->seconds);
  if (a.json) {
    nlohmann::json j = {{"ppl", r->ppl},
                        {"ppl_stderr", r->ppl_stderr},
                        {"mean_nll", r->mean_nll},
                        {"tokens_scored", r->tokens_scored},
                        {"tokens_total", ids.size()},
                        {"windows", r->windows},
                        {"ctx", a.ctx},
                        {"protocol", protocol_name(r->protocol)},
                        {"seconds", r->seconds},
                        {"tokens_per_s", tps},
                        {"file", a.file},
                        {"model", a.model}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("protocol %s, ctx %d, %d windows, %lld tokens scored (text: %zu tokens)\n",
                protocol_name(r->protocol), a.ctx, r->windows, (long long)r->tokens_scored,
                ids.size());
    std::printf("PPL = %.4f +/- %.4f\n", r->ppl, r->ppl_stderr);
    std::printf("%.1f s, %.1f tokens/s\n", r->seconds, tps);
  }
  return 0;
}

Register reg("ppl", "perplexity of a model on a text file", [](CLI::App& sub) {
  auto a = std::make_shared<PplArgs>();
  sub.add_option("model", a->model, "model directory (HF or AWQ)")->required();
  sub.add_option("file", a->file, "text file")->required()->check(CLI::ExistingFile);
  sub.add_option("--ctx", a->ctx, "window size in tokens")->capture_default_str();
  sub.add_option("--protocol", a->protocol, "autoawq (score all but the first token of each "
                                            "window) or llamacpp (score the second half)")
      ->capture_default_str();
  sub.add_option("--max-windows", a->max_windows, "evaluate at most N windows");
  sub.add_option("--threads,-t", a->threads, "threads (0 = all)");
  sub.add_flag("--json", a->json, "print one JSON object");
  return [a]() { return run_ppl(*a); };
});

}  // namespace
}  // namespace awq::cli
