#include "cli/gen_common.h"

#include <CLI/CLI.hpp>

#include <chrono>

#include "kernels/w4.h"

namespace awq::cli {

Expected<Model> load_for_inference(const std::string& dir, bool no_w4) {
  return load_model(dir, LoadOptions{.keep_w4 = !no_w4});
}

const char* weights_kind(const Model& m) {
  for (const auto& b : m.blocks)
    for (const Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down})
      if (l->weight.empty() && l->w4) return "w4";
  return "fp32";
}

std::string token_string(const Tokenizer& tok, int32_t id) {
  return id < 0 ? std::string() : tok.decode({id}, false);
}

Expected<GenStats> generate_stream(Engine& eng, SlotState& st, const Tokenizer& tok,
                                   const std::vector<int32_t>& prompt, int max_new,
                                   Sampler& sampler, const std::unordered_set<int32_t>& eos,
                                   const std::vector<std::string>& stops, std::FILE* out,
                                   std::string* reply) {
  using clock = std::chrono::steady_clock;
  GenStats s;
  s.prompt_tokens = (int)prompt.size();
  if (prompt.empty()) return make_error("empty prompt: nothing to condition on");
  if ((int)prompt.size() >= eng.max_ctx())
    return make_error("prompt has ", prompt.size(), " tokens, context is ", eng.max_ctx(),
                      " (raise --ctx)");
  // Longest common prefix with what the slot holds; at least one token must be run.
  size_t keep = 0;
  while (keep < st.cached.size() && keep < prompt.size() && st.cached[keep] == prompt[keep]) ++keep;
  if (keep == prompt.size()) --keep;
  eng.truncate(st.slot, (int)keep);
  keep = (size_t)eng.pos(st.slot);  // the paged cache may keep less (no block for a copy)
  s.reused = (int)keep;
  st.cached.resize(keep);
  std::vector<float> logits;
  const auto t0 = clock::now();
  AWQ_TRY(eng.prefill(st.slot, std::span(prompt.data() + keep, prompt.size() - keep), logits));
  st.cached.insert(st.cached.end(), prompt.begin() + keep, prompt.end());
  const auto t1 = clock::now();
  s.prefill_s = std::chrono::duration<double>(t1 - t0).count();

  TextStream stream(stops);
  std::vector<int32_t> history = prompt;
  const int V = eng.vocab();
  for (int i = 0; i < max_new; ++i) {
    const int32_t t = sampler.sample(logits.data(), V, history);
    if (eos.count(t)) {
      s.hit_eos = true;
      break;
    }
    history.push_back(t);
    ++s.generated;
    const std::string text = stream.push(tok.token_text(t));
    if (out && !text.empty()) {
      std::fwrite(text.data(), 1, text.size(), out);
      std::fflush(out);
    }
    if (stream.stopped()) {
      s.hit_stop = true;
      break;
    }
    if (i + 1 == max_new) break;
    if (eng.pos(st.slot) >= eng.max_ctx()) {
      s.ctx_full = true;
      break;
    }
    const int slot = st.slot;
    AWQ_TRY(eng.decode(std::span(&slot, 1), std::span(&t, 1), logits));
    st.cached.push_back(t);
  }
  const std::string tail = stream.flush();
  if (out && !tail.empty()) {
    std::fwrite(tail.data(), 1, tail.size(), out);
    std::fflush(out);
  }
  s.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  if (reply) *reply = stream.text();
  return s;
}

void print_stats(const GenStats& s) {
  const double pp = s.prefill_s > 0 ? (s.prompt_tokens - s.reused) / s.prefill_s : 0;
  // decode rate: tokens produced after the first one came from the prefill logits
  const double tg = s.decode_s > 0 && s.generated > 1 ? (s.generated - 1) / s.decode_s : 0;
  std::fprintf(stderr,
               "[prompt %d tokens (%d cached), generated %d tokens, prefill %.1f tok/s, decode %.1f "
               "tok/s%s]\n",
               s.prompt_tokens, s.reused, s.generated, pp, tg,
               s.ctx_full ? ", stopped: context full" : "");
}

}  // namespace awq::cli

namespace awq::cli {

void add_sampling_options(CLI::App& sub, SamplingArgs& s) {
  sub.add_option("--temperature", s.temperature, "0 = greedy (default: generation_config.json)");
  sub.add_option("--top-k", s.top_k, "0 = off");
  sub.add_option("--top-p", s.top_p, "1 = off");
  sub.add_option("--min-p", s.min_p, "0 = off");
  sub.add_option("--repeat-penalty", s.repeat_penalty, "1 = off (HF repetition_penalty)");
  sub.add_option("--seed", s.seed, "sampling seed")->capture_default_str();
}

Expected<SamplingParams> sampling_params(const std::string& model_dir, const SamplingArgs& s) {
  AWQ_ASSIGN(SamplingParams p, load_generation_defaults(model_dir));
  if (s.temperature) p.temperature = *s.temperature;
  if (s.top_k) p.top_k = *s.top_k;
  if (s.top_p) p.top_p = *s.top_p;
  if (s.min_p) p.min_p = *s.min_p;
  if (s.repeat_penalty) p.repetition_penalty = *s.repeat_penalty;
  p.seed = s.seed;
  if (p.temperature < 0) return make_error("--temperature must be >= 0, got ", p.temperature);
  if (p.top_k < 0) return make_error("--top-k must be >= 0, got ", p.top_k);
  if (!(p.top_p > 0 && p.top_p <= 1)) return make_error("--top-p must be in (0, 1], got ", p.top_p);
  if (!(p.min_p >= 0 && p.min_p < 1)) return make_error("--min-p must be in [0, 1), got ", p.min_p);
  if (!(p.repetition_penalty > 0))
    return make_error("--repeat-penalty must be > 0, got ", p.repetition_penalty);
  return p;
}

}  // namespace awq::cli
