#include "server/api.h"

#include <random>

namespace awq::server {

using nlohmann::json;

json error_json(const ApiError& e) {
  return json{{"error",
               {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

namespace {

ApiError bad(const std::string& param, const std::string& msg) {
  ApiError e;
  e.status = 400;
  e.param = param;
  e.message = msg;
  return e;
}

// Optional typed fields: absent or null keeps the default.
std::optional<ApiError> get_number(const json& b, const char* key, double lo, double hi, float& out) {
  auto it = b.find(key);
  if (it == b.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return bad(key, std::string("'") + key + "' must be a number, got " + it->type_name());
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi))
    return bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "], got " + it->dump());
  out = (float)v;
  return std::nullopt;
}

std::optional<ApiError> get_int(const json& b, const char* key, int64_t lo, int64_t hi, int64_t& out,
                                bool* given = nullptr) {
  auto it = b.find(key);
  if (it == b.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !(it->is_number_float() && it->get<double>() == (double)(int64_t)it->get<double>()))
    return bad(key, std::string("'") + key + "' must be an integer, got " + it->dump(-1, ' ', false, json::error_handler_t::replace));
  // a huge integer may not fit int64: nlohmann stores it as unsigned or float
  if (it->is_number_unsigned() && it->get<uint64_t>() > (uint64_t)INT64_MAX)
    return bad(key, std::string("'") + key + "' is out of range, got " + it->dump());
  const double d = it->get<double>();
  if (d < (double)lo || d > (double)hi)
    return bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "], got " + it->dump());
  out = it->is_number_float() ? (int64_t)d : it->get<int64_t>();
  if (given) *given = true;
  return std::nullopt;
}

std::optional<ApiError> get_bool(const json& b, const char* key, bool& out) {
  auto it = b.find(key);
  if (it == b.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return bad(key, std::string("'") + key + "' must be true or false, got " + it->type_name());
  out = it->get<bool>();
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> render_messages(const json& messages, const ApiContext& ctx, std::string& text) {
  if (!ctx.chat_template)
    return bad("messages", "this model has no chat template; use /v1/completions");
  if (!messages.is_array()) return bad("messages", "'messages' must be an array of {role, content} objects");
  if (messages.empty()) return bad("messages", "'messages' must not be empty");
  std::vector<ChatMessage> msgs;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad(where, "'" + where + "' must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return bad(where + ".role", "'" + where + ".role' must be a string");
    ChatMessage cm;
    cm.role = role->get<std::string>();
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      cm.content = "";
    } else if (content->is_string()) {
      cm.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (size_t k = 0; k < content->size(); ++k) {
        const json& part = (*content)[k];
        const std::string pw = where + ".content[" + std::to_string(k) + "]";
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
            !part.contains("text") || !part["text"].is_string())
          return bad(pw, "'" + pw + "' must be {\"type\": \"text\", \"text\": string} (only text is supported)");
        cm.content += part["text"].get<std::string>();
      }
    } else {
      return bad(where + ".content", "'" + where + ".content' must be a string or an array of text parts");
    }
    msgs.push_back(std::move(cm));
  }
  auto r = ctx.chat_template->apply(msgs, true, ctx.bos, ctx.eos);
  if (!r) return bad("messages", "chat template: " + r.error().message);
  text = std::move(*r);
  return std::nullopt;
}

std::optional<ApiError> parse_generation(const json& b, bool chat, const ApiContext& ctx,
                                         ParsedRequest& out) {
  if (!b.is_object()) return bad("", "the request body must be a JSON object");
  out = ParsedRequest{};
  out.chat = chat;
  if (auto it = b.find("model"); it != b.end() && !it->is_null()) {
    if (!it->is_string()) return bad("model", "'model' must be a string");
    if (it->get<std::string>() != ctx.model_name) {
      ApiError e;
      e.status = 404;
      e.param = "model";
      e.code = "model_not_found";
      e.message = "The model '" + it->get<std::string>() + "' does not exist; this server serves '" +
                  ctx.model_name + "'";
      return e;
    }
  }
  // prompt tokens
  GenRequest& g = out.gen;
  if (chat) {
    auto it = b.find("messages");
    if (it == b.end()) return bad("messages", "'messages' is required");
    std::string text;
    if (auto e = render_messages(*it, ctx, text)) return e;
    g.prompt = ctx.tok->encode(text, false);
  } else {
    auto it = b.find("prompt");
    if (it == b.end() || it->is_null()) return bad("prompt", "'prompt' is required");
    const json* p = &*it;
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) p = &(*p)[0];
    if (p->is_string()) {
      out.prompt_text = p->get<std::string>();
      g.prompt = ctx.tok->encode(out.prompt_text, true);
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
      for (const json& t : *p) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= (int64_t)ctx.tok->vocab_size())
          return bad("prompt", "'prompt' token ids must be integers in [0, " +
                                   std::to_string(ctx.tok->vocab_size()) + ")");
        g.prompt.push_back((int32_t)t.get<int64_t>());
      }
      out.prompt_text = ctx.tok->decode(g.prompt, false);
    } else if (p->is_array() && p->size() > 1) {
      return bad("prompt", "one prompt per request is supported (send several requests)");
    } else {
      return bad("prompt", "'prompt' must be a string or an array of token ids");
    }
  }
  if (g.prompt.empty()) return bad(chat ? "messages" : "prompt", "the prompt is empty");
  const int P = (int)g.prompt.size();
  if (P >= ctx.max_ctx) {
    ApiError e = bad(chat ? "messages" : "prompt",
                     "This model's maximum context length is " + std::to_string(ctx.max_ctx) +
                         " tokens; the prompt has " + std::to_string(P) +
                         " tokens (it needs room for at least one generated token)");
    e.code = "context_length_exceeded";
    return e;
  }

  // sampling (defaults: the model's generation_config.json, as vLLM does)
  g.sampling = ctx.defaults;
  if (auto e = get_number(b, "temperature", 0, 100, g.sampling.temperature)) return e;
  if (auto e = get_number(b, "top_p", 1e-9, 1, g.sampling.top_p)) return e;
  int64_t top_k = g.sampling.top_k;
  if (auto e = get_int(b, "top_k", -1, 1 << 30, top_k)) return e;
  g.sampling.top_k = top_k < 0 ? 0 : (int)top_k;
  if (auto e = get_number(b, "min_p", 0, 1, g.sampling.min_p)) return e;
  if (auto e = get_number(b, "repetition_penalty", 1e-6, 100, g.sampling.repetition_penalty)) return e;
  if (auto e = get_number(b, "presence_penalty", -2, 2, g.presence_penalty)) return e;
  if (auto e = get_number(b, "frequency_penalty", -2, 2, g.frequency_penalty)) return e;
  int64_t seed = -1;
  bool seed_given = false;
  if (auto e = get_int(b, "seed", INT64_MIN, INT64_MAX, seed, &seed_given)) return e;
  g.sampling.seed = seed_given ? (uint64_t)seed : std::random_device{}() * 0x100000001ull + std::random_device{}();

  // lengths
  int64_t max_tokens = 0;
  bool mt_given = false;
  const char* mt_key = "max_tokens";
  if (chat && b.contains("max_completion_tokens") && !b["max_completion_tokens"].is_null()) mt_key = "max_completion_tokens";
  if (auto e = get_int(b, mt_key, 1, INT32_MAX, max_tokens, &mt_given)) return e;
  const int room = ctx.max_ctx - P;
  if (mt_given && max_tokens > room) {
    ApiError e = bad(mt_key, std::string("'") + mt_key + "' is " + std::to_string(max_tokens) +
                                 " but the prompt has " + std::to_string(P) +
                                 " tokens and the context is " + std::to_string(ctx.max_ctx) +
                                 ": at most " + std::to_string(room) + " can be generated");
    e.code = "context_length_exceeded";
    return e;
  }
  // OpenAI's legacy completions default is 16 tokens; chat runs to the end of the context
  g.max_tokens = mt_given ? (int)max_tokens : chat ? room : std::min(16, room);
  int64_t n = 1;
  if (auto e = get_int(b, "n", 1, 16, n)) return e;
  g.n = (int)n;

  // stops
  if (auto it = b.find("stop"); it != b.end() && !it->is_null()) {
    if (it->is_string()) {
      g.stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      if (it->size() > 16) return bad("stop", "'stop' takes at most 16 strings");
      for (const json& s : *it) {
        if (!s.is_string()) return bad("stop", "'stop' must be a string or an array of strings");
        g.stop.push_back(s.get<std::string>());
      }
    } else {
      return bad("stop", "'stop' must be a string or an array of strings");
    }
  }
  bool ignore_eos = false;
  if (auto e = get_bool(b, "ignore_eos", ignore_eos)) return e;
  if (!ignore_eos)
    for (int32_t id : ctx.tok->eos_ids()) g.stop_ids.insert(id);
  if (auto it = b.find("stop_token_ids"); it != b.end() && !it->is_null()) {
    if (!it->is_array()) return bad("stop_token_ids", "'stop_token_ids' must be an array of integers");
    for (const json& t : *it) {
      if (!t.is_number_integer()) return bad("stop_token_ids", "'stop_token_ids' must be an array of integers");
      g.stop_ids.insert((int32_t)t.get<int64_t>());
    }
  }

  // streaming, logprobs, echo
  if (auto e = get_bool(b, "stream", out.stream)) return e;
  if (auto it = b.find("stream_options"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) return bad("stream_options", "'stream_options' must be an object");
    if (auto e = get_bool(*it, "include_usage", out.include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  if (chat) {
    if (auto e = get_bool(b, "logprobs", out.chat_logprobs)) return e;
    int64_t top = 0;
    bool top_given = false;
    if (auto e = get_int(b, "top_logprobs", 0, 20, top, &top_given)) return e;
    if (top_given && !out.chat_logprobs)
      return bad("top_logprobs", "'top_logprobs' requires 'logprobs': true");
    g.logprobs = out.chat_logprobs ? (int)top : -1;
  } else {
    int64_t lp = -1;
    if (auto e = get_int(b, "logprobs", 0, 20, lp)) return e;
    g.logprobs = (int)lp;
    if (auto e = get_bool(b, "echo", out.echo)) return e;
  }
  return std::nullopt;
}

}  // namespace awq::server
