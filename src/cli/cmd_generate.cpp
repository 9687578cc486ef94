// awq generate MODEL -p TEXT -n N: stream a completion (KV-cached decoding, W4 kernels for AWQ).
#include <cstdio>
#include <optional>

#include "cli/command.h"
#include "cli/gen_common.h"
#include "core/threads.h"
#include "kernels/w4.h"

#include <climits>

namespace awq::cli {
namespace {

struct GenArgs {
  std::string model, prompt, kv_dtype = "f32";
  int n = 128, ctx = 2048, threads = 0;
  SamplingArgs sampling;
  std::vector<std::string> stops;
  bool chat = false, no_w4 = false, batch_invariant = false;
};

int run_generate(const GenArgs& a) {
  set_num_threads(a.threads);
  if (a.n < 0) return fail("-n must be >= 0");
  auto sp = sampling_params(a.model, a.sampling);
  if (!sp) return fail(sp.error());
  auto tok = Tokenizer::load(a.model);
  if (!tok) return fail(tok.error());
  std::vector<int32_t> prompt;
  if (a.chat) {
    if (tok->chat_template().empty())
      return fail(a.model + ": --chat given but the tokenizer has no chat template");
    auto tmpl = ChatTemplate::parse(tok->chat_template());
    if (!tmpl) return fail(tmpl.error());
    auto text = tmpl->apply({{"user", a.prompt}}, true, token_string(*tok, tok->bos_id()),
                            token_string(*tok, tok->eos_id()));
    if (!text) return fail(text.error());
    prompt = tok->encode(*text, false);
  } else {
    prompt = tok->encode(a.prompt, true);
  }
  auto model = load_for_inference(a.model, a.no_w4);
  if (!model) return fail(model.error());
  if ((size_t)model->cfg.vocab < tok->vocab_size())
    for (int32_t t : prompt)
      if (t >= model->cfg.vocab)
        return fail("prompt token id " + std::to_string(t) + " is outside the model vocabulary (" +
                    std::to_string(model->cfg.vocab) + "): tokenizer and model do not match");
  if (a.batch_invariant) w4_set_decode_max_m(INT_MAX);
  auto eng = Engine::create(*model, {.max_ctx = a.ctx, .n_slots = 1, .batch_invariant = a.batch_invariant,
                                              .kv_f16 = a.kv_dtype == "f16"});
  if (!eng) return fail(eng.error());
  const auto eos_v = tok->eos_ids();
  const std::unordered_set<int32_t> eos(eos_v.begin(), eos_v.end());
  Sampler sampler(*sp);
  SlotState st;
  auto r = generate_stream(*eng, st, *tok, prompt, a.n, sampler, eos, a.stops, stdout, nullptr);
  if (!r) return fail(r.error());
  std::fputc('\n', stdout);
  std::fflush(stdout);
  print_stats(*r);
  return 0;
}

Register reg("generate", "generate text from a prompt (streamed)", [](CLI::App& sub) {
  auto a = std::make_shared<GenArgs>();
  sub.add_option("model", a->model, "model directory (HF or AWQ)")->required();
  sub.add_option("-p,--prompt", a->prompt, "prompt text")->required();
  sub.add_option("-n,--n-predict", a->n, "maximum new tokens")->capture_default_str();
  sub.add_option("--ctx", a->ctx, "context size (KV cache) in tokens")->capture_default_str();
  sub.add_option("--threads,-t", a->threads, "threads (0 = all)");
  add_sampling_options(sub, a->sampling);
  sub.add_option("--stop", a->stops, "stop when this string is produced (repeatable)");
  sub.add_flag("--chat", a->chat, "wrap the prompt as a user turn with the chat template");
  sub.add_flag("--no-w4", a->no_w4, "AWQ checkpoints: dequantize to fp32 instead of W4 kernels");
  sub.add_flag("--batch-invariant", a->batch_invariant,
               "compute rows as `awq serve` does (same tokens as through the server)");
  sub.add_option("--kv-dtype", a->kv_dtype,
                 "K/V storage: f32 (exact: equals the full forward) or f16 (as `awq serve` stores it)")
      ->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  return [a]() { return run_generate(*a); };
});

}  // namespace
}  // namespace awq::cli
