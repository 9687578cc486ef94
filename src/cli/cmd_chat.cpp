// awq chat MODEL: interactive chat over stdin/stdout with the model's chat template. The
// history is re-rendered every turn; the KV cache keeps the common token prefix.
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/command.h"
#include "cli/gen_common.h"
#include "core/threads.h"

namespace awq::cli {
namespace {

struct ChatArgs {
  std::string model, system;
  int n = 512, ctx = 4096, threads = 0;
  SamplingArgs sampling;
  bool no_w4 = false;
};

int run_chat(const ChatArgs& a) {
  set_num_threads(a.threads);
  auto tok = Tokenizer::load(a.model);
  if (!tok) return fail(tok.error());
  if (tok->chat_template().empty()) return fail(a.model + ": the tokenizer has no chat template");
  auto tmpl = ChatTemplate::parse(tok->chat_template());
  if (!tmpl) return fail(tmpl.error());
  auto spe = sampling_params(a.model, a.sampling);
  if (!spe) return fail(spe.error());
  const SamplingParams sp = *spe;
  auto model = load_for_inference(a.model, a.no_w4);
  if (!model) return fail(model.error());
  auto eng = Engine::create(*model, {.max_ctx = a.ctx, .n_slots = 1});
  if (!eng) return fail(eng.error());
  const auto eos_v = tok->eos_ids();
  const std::unordered_set<int32_t> eos(eos_v.begin(), eos_v.end());
  const std::string bos_s = token_string(*tok, tok->bos_id()), eos_s = token_string(*tok, tok->eos_id());
  Sampler sampler(sp);
  SlotState st;
  std::vector<ChatMessage> history;
  if (!a.system.empty()) history.push_back({"system", a.system});
  std::fprintf(stderr, "awq chat: %s (%s weights). /reset clears the history, /exit quits.\n",
               a.model.c_str(), weights_kind(*model));
  std::string line;
  for (;;) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) {
      std::fputc('\n', stdout);
      break;  // EOF
    }
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history.resize(a.system.empty() ? 0 : 1);
      std::fputs("(history cleared)\n", stdout);
      continue;
    }
    if (line.empty()) continue;
    history.push_back({"user", line});
    auto text = tmpl->apply(history, true, bos_s, eos_s);
    if (!text) {
      history.pop_back();
      std::fprintf(stderr, "error: %s\n", text.error().message.c_str());
      continue;
    }
    const std::vector<int32_t> prompt = tok->encode(*text, false);
    if ((int)prompt.size() + 1 >= a.ctx) {
      history.pop_back();
      std::fprintf(stderr, "error: conversation has %zu tokens, context is %d; /reset or raise --ctx\n",
                   prompt.size(), a.ctx);
      continue;
    }
    std::string reply;
    auto r = generate_stream(*eng, st, *tok, prompt, std::min(a.n, a.ctx - (int)prompt.size()),
                             sampler, eos, {}, stdout, &reply);
    if (!r) return fail(r.error());
    std::fputc('\n', stdout);
    std::fflush(stdout);
    print_stats(*r);
    history.push_back({"assistant", reply});
  }
  return 0;
}

Register reg("chat", "interactive chat (stdin/stdout) with the model's chat template",
             [](CLI::App& sub) {
  auto a = std::make_shared<ChatArgs>();
  sub.add_option("model", a->model, "model directory (HF or AWQ)")->required();
  sub.add_option("--system", a->system, "system message");
  sub.add_option("-n,--n-predict", a->n, "maximum tokens per reply")->capture_default_str();
  sub.add_option("--ctx", a->ctx, "context size (KV cache) in tokens")->capture_default_str();
  sub.add_option("--threads,-t", a->threads, "threads (0 = all)");
  add_sampling_options(sub, a->sampling);
  sub.add_flag("--no-w4", a->no_w4, "AWQ checkpoints: dequantize to fp32 instead of W4 kernels");
  return [a]() { return run_chat(*a); };
});

}  // namespace
}  // namespace awq::cli
