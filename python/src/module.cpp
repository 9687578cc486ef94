// awq_cpp._native: the C++ core for Python (nanobind). The Python layer (python/awq_cpp/)
// validates arguments, names them in its errors and adds tqdm; this file maps the library's
// Expected/Status errors to ValueError with the same message the CLI prints after "error: ".
//
// Long calls (quantize, perplexity, prefill/decode) run with the GIL released. quantize and
// perplexity run on a worker thread while the calling thread polls for signals every 50 ms:
// Ctrl-C (SIGINT) sets the library's cancel flag, waits for the worker to stop, and raises
// KeyboardInterrupt (quantize then leaves no output: the checkpoint writer removes its
// temporary directory).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/cancel.h"
#include "core/mmap_file.h"
#include "core/threads.h"
#include "eval/perplexity.h"
#include "io/tokenizer.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/weights.h"
#include "quant/quantize.h"
#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace awq::py {
namespace {

[[noreturn]] void raise(const Error& e) { throw nb::value_error(e.message.c_str()); }
template <class T>
T take(Expected<T>&& r) {
  if (!r) raise(r.error());
  return std::move(r).value();
}
void check(const Status& s) {
  if (!s) raise(s.error());
}

// Runs fn() on a worker thread; the calling (Python) thread waits with the GIL released and,
// every 50 ms, runs pending Python signal handlers and on_tick(). If a handler raises
// (KeyboardInterrupt) or on_tick throws, *cancel is set, the worker is joined and the Python
// exception propagates. fn's own exceptions are rethrown here.
template <class F>
auto run_interruptible(F&& fn, std::atomic<bool>* cancel, const std::function<void()>& on_tick,
                       bool global_cancel = false) -> decltype(fn()) {
  using R = decltype(fn());
  std::optional<R> result;
  std::exception_ptr exc;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread worker([&] {
    try {
      result.emplace(fn());
    } catch (...) {
      exc = std::current_exception();
    }
    std::lock_guard<std::mutex> lk(mu);
    done = true;
    cv.notify_all();
  });
  auto join = [&] {
    nb::gil_scoped_release rel;
    worker.join();
  };
  for (;;) {
    bool finished;
    {
      nb::gil_scoped_release rel;
      std::unique_lock<std::mutex> lk(mu);
      finished = cv.wait_for(lk, std::chrono::milliseconds(50), [&] { return done; });
    }
    if (finished) break;
    if (PyErr_CheckSignals() != 0) {
      nb::python_error err;  // fetches KeyboardInterrupt (or whatever the handler raised)
      if (cancel) cancel->store(true);
      if (global_cancel) request_cancel();
      join();
      throw err;
    }
    if (on_tick) {
      try {
        on_tick();
      } catch (...) {
        if (cancel) cancel->store(true);
        join();
        throw;
      }
    }
  }
  join();
  if (exc) std::rethrow_exception(exc);
  return std::move(*result);
}

// ---- quantize ----------------------------------------------------------------------------

template <class T>
T opt_get(const nb::dict& d, const char* key, T dflt) {
  if (!d.contains(key)) return dflt;
  nb::object v = d[key];
  if (v.is_none()) return dflt;
  return nb::cast<T>(v);
}

// options: the normalised keyword arguments of awq_cpp.quantize (python/awq_cpp/_quantize.py
// checks names and types). progress(done, total) is called on the Python thread.
std::string quantize(const std::string& model, const std::string& out_dir, const nb::dict& o,
                    std::optional<nb::callable> progress) {
  QuantizeOptions q;
  q.search.q.w_bit = opt_get<int>(o, "w_bit", 4);
  q.search.q.group_size = opt_get<int>(o, "group_size", 128);
  q.search.q.zero_point = opt_get<bool>(o, "zero_point", true);
  q.search.clip = opt_get<bool>(o, "clip", true);
  q.search.duo_scaling = opt_get<bool>(o, "duo_scaling", true);
  const std::string grid_clip = opt_get<std::string>(o, "grid_clip", grid_clip_name(q.search));
  if (!set_grid_clip(q.search, grid_clip))
    throw nb::value_error(("grid_clip " + grid_clip + " is not one of asym, coarse, sym").c_str());
  q.search.grid_stride = opt_get<int>(o, "grid_stride", q.search.grid_stride);
  if (q.search.grid_stride < 1) throw nb::value_error("grid_stride must be at least 1");
  const std::string clip_mode = opt_get<std::string>(o, "clip_mode", "joint");
  if (clip_mode == "sampled") q.search.clip_mode = SearchOptions::ClipMode::Sampled;
  else if (clip_mode == "gram") q.search.clip_mode = SearchOptions::ClipMode::Gram;
  else if (clip_mode == "gram-asym") q.search.clip_mode = SearchOptions::ClipMode::GramAsym;
  else if (clip_mode == "joint") q.search.clip_mode = SearchOptions::ClipMode::Joint;
  else
    throw nb::value_error(("clip_mode " + clip_mode +
                           " is not supported (expected sampled, gram, gram-asym or joint)")
                              .c_str());
  const std::string method = opt_get<std::string>(o, "method", "awq");
  if (method == "awq") q.method = QuantizeOptions::Method::Awq;
  else if (method == "rtn") q.method = QuantizeOptions::Method::Rtn;
  else throw nb::value_error(("method " + method + " is not supported (expected awq or rtn)").c_str());
  q.calib_path = opt_get<std::string>(o, "calib", "");
  q.n_samples = opt_get<int>(o, "n_samples", 128);
  q.seqlen = opt_get<int>(o, "seqlen", 512);
  q.search_blocks = opt_get<int>(o, "search_blocks", 16);
  if (o.contains("chunk_blocks") && !o["chunk_blocks"].is_none())
    q.chunk_blocks = nb::cast<int>(o["chunk_blocks"]);
  q.gram_loss = opt_get<bool>(o, "gram_loss", true);
  q.clip_aware_search = opt_get<bool>(o, "clip_aware_search", true);
  q.gqa_o_scaling = opt_get<bool>(o, "gqa_o_scale", false);
  q.modules_to_not_convert = opt_get<std::vector<std::string>>(o, "modules_to_not_convert", {});
  q.overwrite = opt_get<bool>(o, "overwrite", false);
  q.resume = opt_get<bool>(o, "resume", false);
  q.resume_state = opt_get<bool>(o, "resume_state", true);
  q.progress = opt_get<bool>(o, "native_progress", false);
  set_num_threads(opt_get<int>(o, "threads", 0));

  std::atomic<bool> cancel{false};
  std::atomic<int64_t> done{-1}, total{0};
  q.cancel = &cancel;
  q.on_progress = [&](int64_t d, int64_t t) {
    total.store(t);
    done.store(d);
  };
  int64_t reported = -1;
  auto tick = [&] {
    const int64_t d = done.load();
    if (progress && d != reported) {
      reported = d;
      (*progress)(d, total.load());
    }
  };
  struct ClearCancel {  // the process-wide flag (core/cancel.h) the inner loops poll
    std::atomic<bool>& f;
    ~ClearCancel() {
      if (f.load()) clear_cancel();
    }
  } clear_after{cancel};
  QuantizeReport r = run_interruptible(
      [&]() -> QuantizeReport { return take(quantize_model(model, out_dir, q)); }, &cancel, tick,
      /*global_cancel=*/true);
  tick();
  // The same JSON as `awq quantize --report` (quant/quantize.h); the Python side parses it.
  const std::string rep = report_to_json(r).dump();
  return rep;
}

// ---- inference -----------------------------------------------------------------------------

// A loaded model directory: tokenizer, weights (as `awq generate` loads them), one engine slot.
struct LoadedModel {
  std::string path;
  Tokenizer tok;
  Model model;
  bool no_w4 = false;
  LmHeadFormat lm_head = LmHeadFormat::Default;
  std::optional<ChatTemplate> tmpl;
  std::optional<Engine> engine;  // created on first generate, max_ctx = ctx
  int ctx = 2048;
  std::mutex mu;                 // one engine user at a time (taken with the GIL released)
  uint64_t generation = 0;       // id of the generation that owns the engine slot
};

LmHeadFormat parse_lm_head(const std::string& s) {
  if (s.empty()) return LmHeadFormat::Default;
  if (s == "f16") return LmHeadFormat::F16;
  if (s == "q8") return LmHeadFormat::Q8;
  throw nb::value_error(("lm_head " + s + " is not supported (expected f16 or q8)").c_str());
}

std::shared_ptr<LoadedModel> load(const std::string& path, int ctx, bool no_w4,
                                  const std::string& lm_head, int threads) {
  if (ctx < 1) throw nb::value_error(("ctx must be >= 1, got " + std::to_string(ctx)).c_str());
  set_num_threads(threads);
  auto lm = std::make_shared<LoadedModel>();
  lm->path = path;
  lm->ctx = ctx;
  lm->no_w4 = no_w4;
  lm->lm_head = parse_lm_head(lm_head);
  {
    nb::gil_scoped_release rel;
    auto tok = Tokenizer::load(path);
    if (!tok) {
      nb::gil_scoped_acquire acq;
      raise(tok.error());
    }
    lm->tok = std::move(*tok);
    auto m = load_model(path, LoadOptions{.keep_w4 = !no_w4, .lm_head = lm->lm_head});
    if (!m) {
      nb::gil_scoped_acquire acq;
      raise(m.error());
    }
    lm->model = std::move(*m);
  }
  return lm;
}

Engine& engine_of(LoadedModel& lm) {
  if (!lm.engine) lm.engine.emplace(take(Engine::create(lm.model, {.max_ctx = lm.ctx, .n_slots = 1})));
  return *lm.engine;
}

const ChatTemplate& template_of(LoadedModel& lm) {
  if (!lm.tmpl) {
    if (lm.tok.chat_template().empty())
      throw nb::value_error((lm.path + ": the tokenizer has no chat template").c_str());
    lm.tmpl.emplace(take(ChatTemplate::parse(lm.tok.chat_template())));
  }
  return *lm.tmpl;
}

std::string token_string(const Tokenizer& tok, int32_t id) {
  return id < 0 ? std::string() : tok.decode({id}, false);
}

// The text `awq generate --chat` / `awq chat` feeds the model for these messages.
std::string render_chat(LoadedModel& lm, const std::vector<std::pair<std::string, std::string>>& msgs,
                        bool add_generation_prompt) {
  std::vector<ChatMessage> m;
  for (const auto& [role, content] : msgs) m.push_back({role, content});
  return take(template_of(lm).apply(m, add_generation_prompt, token_string(lm.tok, lm.tok.bos_id()),
                                    token_string(lm.tok, lm.tok.eos_id())));
}

// Sampling parameters: the model's generation_config.json, then the given overrides
// (validated with the CLI's rules; errors name the Python argument).
SamplingParams sampling(const LoadedModel& lm, std::optional<float> temperature,
                        std::optional<int> top_k, std::optional<float> top_p,
                        std::optional<float> min_p, std::optional<float> repetition_penalty,
                        uint64_t seed) {
  SamplingParams p = take(load_generation_defaults(lm.path));
  if (temperature) p.temperature = *temperature;
  if (top_k) p.top_k = *top_k;
  if (top_p) p.top_p = *top_p;
  if (min_p) p.min_p = *min_p;
  if (repetition_penalty) p.repetition_penalty = *repetition_penalty;
  p.seed = seed;
  auto bad = [](const std::string& s) { throw nb::value_error(s.c_str()); };
  if (p.temperature < 0) bad("temperature must be >= 0, got " + std::to_string(p.temperature));
  if (p.top_k < 0) bad("top_k must be >= 0, got " + std::to_string(p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1)) bad("top_p must be in (0, 1], got " + std::to_string(p.top_p));
  if (!(p.min_p >= 0 && p.min_p < 1)) bad("min_p must be in [0, 1), got " + std::to_string(p.min_p));
  if (!(p.repetition_penalty > 0))
    bad("repetition_penalty must be > 0, got " + std::to_string(p.repetition_penalty));
  return p;
}

// One streaming generation over the model's engine slot; the same loop as `awq generate`
// (cli/gen_common.cpp generate_stream, without prefix reuse: the slot is reset first).
// Each next() returns (text piece, token ids produced since the previous piece); a token
// whose bytes are held back (partial UTF-8, a possible stop string) yields no text yet.
class Generation {
 public:
  Generation(std::shared_ptr<LoadedModel> lm, std::vector<int32_t> prompt, int max_new,
             SamplingParams sp, std::vector<std::string> stops)
      : lm_(std::move(lm)), prompt_(std::move(prompt)), max_new_(max_new), sampler_(sp),
        stream_(std::move(stops)) {
    if (max_new_ < 0)
      throw nb::value_error(("max_new_tokens must be >= 0, got " + std::to_string(max_new_)).c_str());
    if (prompt_.empty()) throw nb::value_error("empty prompt: nothing to condition on");
    if ((int)prompt_.size() >= lm_->ctx)
      throw nb::value_error(("prompt has " + std::to_string(prompt_.size()) + " tokens, context is " +
                             std::to_string(lm_->ctx) + " (raise ctx)")
                                .c_str());
    const int V = lm_->model.cfg.vocab;
    for (int32_t t : prompt_)
      if (t < 0 || t >= V)
        throw nb::value_error(("prompt token id " + std::to_string(t) +
                               " is outside the model vocabulary (" + std::to_string(V) +
                               "): tokenizer and model do not match")
                                  .c_str());
    for (int32_t e : lm_->tok.eos_ids()) eos_.insert(e);
    history_ = prompt_;
    id_ = ++lm_->generation;
  }

  std::optional<std::pair<std::string, std::vector<int32_t>>> next() {
    std::vector<int32_t> ids;
    while (!finished_) {
      if (lm_->generation != id_)
        throw std::runtime_error(
            "another generation was started on this Model; this iterator can no longer run");
      if (max_new_ == 0) {
        finished_ = true;
        break;
      }
      Status st = Status::Ok();
      {
        nb::gil_scoped_release rel;
        std::lock_guard<std::mutex> lk(lm_->mu);
        Engine& eng = *lm_->engine;
        if (!started_) {
          eng.reset(0);
          st = eng.prefill(0, prompt_, logits_);
          started_ = true;
        } else if (pending_decode_) {
          const int slot = 0;
          const int32_t t = history_.back();
          st = eng.decode(std::span(&slot, 1), std::span(&t, 1), logits_);
          pending_decode_ = false;
        }
      }
      check(st);
      const int32_t t = sampler_.sample(logits_.data(), lm_->model.cfg.vocab, history_);
      if (eos_.count(t)) {
        hit_eos_ = true;
        finished_ = true;
        break;
      }
      history_.push_back(t);
      ids.push_back(t);
      ++generated_;
      std::string text = stream_.push(lm_->tok.token_text(t));
      if (stream_.stopped()) {
        hit_stop_ = true;
        finished_ = true;
      } else if (generated_ == max_new_) {
        finished_ = true;
      } else if (lm_->engine->pos(0) >= lm_->engine->max_ctx()) {
        ctx_full_ = true;
        finished_ = true;
      } else {
        pending_decode_ = true;
      }
      if (!text.empty()) return std::make_pair(std::move(text), std::move(ids));
    }
    if (!flushed_) {
      flushed_ = true;
      std::string tail = stream_.flush();
      if (!tail.empty() || !ids.empty()) return std::make_pair(std::move(tail), std::move(ids));
    }
    return std::nullopt;
  }

  nb::dict stats() const {
    nb::dict d;
    d["prompt_tokens"] = (int)prompt_.size();
    d["generated_tokens"] = generated_;
    d["hit_eos"] = hit_eos_;
    d["hit_stop"] = hit_stop_;
    d["ctx_full"] = ctx_full_;
    d["finished"] = finished_ && flushed_;
    return d;
  }
  std::vector<int32_t> prompt_ids() const { return prompt_; }

 private:
  std::shared_ptr<LoadedModel> lm_;
  std::vector<int32_t> prompt_, history_;
  int max_new_;
  Sampler sampler_;
  TextStream stream_;
  std::unordered_set<int32_t> eos_;
  std::vector<float> logits_;
  uint64_t id_ = 0;
  int generated_ = 0;
  bool started_ = false, pending_decode_ = false, finished_ = false, flushed_ = false;
  bool hit_eos_ = false, hit_stop_ = false, ctx_full_ = false;
};

}  // namespace
}  // namespace awq::py

NB_MODULE(_native, m) {
  using namespace awq;
  using namespace awq::py;
  m.doc() = "awq-cpp native core (use the awq_cpp package, not this module directly)";

  m.def("quantize", &quantize, "model"_a, "out_dir"_a, "options"_a, "progress"_a.none() = nb::none());

  m.def("set_num_threads", &set_num_threads, "n"_a);
  m.def("num_threads", &num_threads);

  m.def("check_model_config", [](const std::string& dir) {
    ModelConfig c = take(load_model_config(dir));
    nb::dict d;
    d["n_layers"] = c.n_layers;
    d["hidden"] = c.hidden;
    d["vocab"] = c.vocab;
    return d;
  }, "dir"_a);

  nb::class_<LoadedModel>(m, "NativeModel")
      .def_ro("path", &LoadedModel::path)
      .def_ro("ctx", &LoadedModel::ctx)
      .def_prop_ro("vocab_size", [](const LoadedModel& lm) { return lm.model.cfg.vocab; })
      .def_prop_ro("n_layers", [](const LoadedModel& lm) { return lm.model.cfg.n_layers; })
      .def_prop_ro("hidden_size", [](const LoadedModel& lm) { return lm.model.cfg.hidden; })
      .def_prop_ro("bos_id", [](const LoadedModel& lm) { return lm.tok.bos_id(); })
      .def_prop_ro("eos_ids", [](const LoadedModel& lm) { return lm.tok.eos_ids(); })
      .def_prop_ro("weights_kind", [](const LoadedModel& lm) {
        for (const auto& b : lm.model.blocks)
          for (const Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down})
            if (l->weight.empty() && l->w4) return "w4";
        return "fp32";
      })
      .def("encode", [](const LoadedModel& lm, const std::string& text, bool add_special) {
        return lm.tok.encode(text, add_special);
      }, "text"_a, "add_special_tokens"_a = true)
      .def("decode", [](const LoadedModel& lm, const std::vector<int32_t>& ids, bool skip) {
        return lm.tok.decode(ids, skip);
      }, "ids"_a, "skip_special_tokens"_a = false)
      .def("render_chat", [](LoadedModel& lm, const std::vector<std::pair<std::string, std::string>>& msgs,
                             bool add_generation_prompt) {
        return render_chat(lm, msgs, add_generation_prompt);
      }, "messages"_a, "add_generation_prompt"_a = true)
      // logits [T, vocab] of one sequence (fp32; the model as loaded: W4 kernels for AWQ
      // checkpoints). The array owns the C++ buffer (no copy).
      .def("logits", [](LoadedModel& lm, const std::vector<int32_t>& ids) {
        const int T = (int)ids.size(), V = lm.model.cfg.vocab, H = lm.model.cfg.hidden;
        if (T == 0) throw nb::value_error("token_ids is empty");
        for (int32_t t : ids)
          if (t < 0 || t >= V)
            throw nb::value_error(("token_ids: id " + std::to_string(t) +
                                   " is outside the model vocabulary (" + std::to_string(V) + ")")
                                      .c_str());
        auto* out = new std::vector<float>((size_t)T * V);
        {
          nb::gil_scoped_release rel;
          std::lock_guard<std::mutex> lk(lm.mu);
          std::vector<float> hidden((size_t)T * H);
          forward_hidden(lm.model, ids.data(), 1, T, hidden.data());
          lm_head_forward(lm.model, hidden.data(), T, out->data());
        }
        nb::capsule owner(out, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
        return nb::ndarray<nb::numpy, float, nb::ndim<2>>(out->data(), {(size_t)T, (size_t)V}, owner);
      }, "token_ids"_a)
      .def("perplexity", [](LoadedModel& lm, const std::vector<int32_t>& ids, int ctx,
                            const std::string& protocol, int max_windows) {
        PplOptions opt;
        opt.ctx = ctx;
        opt.protocol = take(parse_protocol(protocol));
        opt.max_windows = max_windows;
        opt.progress = false;
        // `awq ppl` evaluates with the exact (fp16 / fp32) lm_head; load that model when this
        // one was loaded with another decode head.
        std::shared_ptr<Model> eval;
        const Model* mp = &lm.model;
        if (lm.lm_head != LmHeadFormat::F16 || lm.no_w4) {
          nb::gil_scoped_release rel;
          auto m2 = load_model(lm.path, LoadOptions{.keep_w4 = true, .lm_head = LmHeadFormat::F16});
          if (!m2) {
            nb::gil_scoped_acquire acq;
            raise(m2.error());
          }
          eval = std::make_shared<Model>(std::move(*m2));
          mp = eval.get();
        }
        // perplexity polls the process-wide cancel flag (core/cancel.h)
        std::atomic<bool> ppl_cancel{false};
        struct ClearCancel {
          std::atomic<bool>& f;
          ~ClearCancel() {
            if (f.load()) clear_cancel();
          }
        } clear_after{ppl_cancel};
        PplResult r = run_interruptible(
            [&]() -> PplResult {
              std::lock_guard<std::mutex> lk(lm.mu);
              return take(perplexity(*mp, ids, opt));
            },
            &ppl_cancel, {}, /*global_cancel=*/true);
        nb::dict d;
        d["ppl"] = r.ppl;
        d["ppl_stderr"] = r.ppl_stderr;
        d["mean_nll"] = r.mean_nll;
        d["tokens_scored"] = r.tokens_scored;
        d["tokens_total"] = ids.size();
        d["windows"] = r.windows;
        d["ctx"] = ctx;
        d["protocol"] = protocol_name(r.protocol);
        d["seconds"] = r.seconds;
        return d;
      }, "token_ids"_a, "ctx"_a, "protocol"_a, "max_windows"_a)
      .def("sampling_params", [](const LoadedModel& lm, std::optional<float> temperature,
                                 std::optional<int> top_k, std::optional<float> top_p,
                                 std::optional<float> min_p, std::optional<float> rep, uint64_t seed) {
        SamplingParams p = sampling(lm, temperature, top_k, top_p, min_p, rep, seed);
        nb::dict d;
        d["temperature"] = p.temperature;
        d["top_k"] = p.top_k;
        d["top_p"] = p.top_p;
        d["min_p"] = p.min_p;
        d["repetition_penalty"] = p.repetition_penalty;
        d["seed"] = p.seed;
        return d;
      }, "temperature"_a.none(), "top_k"_a.none(), "top_p"_a.none(), "min_p"_a.none(),
         "repetition_penalty"_a.none(), "seed"_a);

  m.def("load", &load, "path"_a, "ctx"_a = 2048, "no_w4"_a = false, "lm_head"_a = "",
        "threads"_a = 0);

  nb::class_<Generation>(m, "Generation")
      .def("next", &Generation::next)
      .def("stats", &Generation::stats)
      .def_prop_ro("prompt_ids", &Generation::prompt_ids);

  m.def("start_generation",
        [](std::shared_ptr<LoadedModel> lm, std::vector<int32_t> prompt, int max_new,
           std::optional<float> temperature, std::optional<int> top_k, std::optional<float> top_p,
           std::optional<float> min_p, std::optional<float> rep, uint64_t seed,
           std::vector<std::string> stops) {
          SamplingParams sp = sampling(*lm, temperature, top_k, top_p, min_p, rep, seed);
          engine_of(*lm);
          return Generation(lm, std::move(prompt), max_new, sp, std::move(stops));
        },
        "model"_a, "prompt_ids"_a, "max_new_tokens"_a, "temperature"_a.none(), "top_k"_a.none(),
        "top_p"_a.none(), "min_p"_a.none(), "repetition_penalty"_a.none(), "seed"_a, "stop"_a);
}
