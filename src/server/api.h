// OpenAI-compatible request parsing and error objects for `awq serve` (no HTTP here, so the
// validation is testable on its own). Field names follow the OpenAI API reference (completions,
// chat completions) and vLLM's extensions (top_k, min_p, repetition_penalty, ignore_eos,
// stop_token_ids, /tokenize, /detokenize).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "io/tokenizer.h"
#include "runtime/chat_template.h"
#include "runtime/scheduler.h"

namespace awq::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field ("" = none)
  std::string code;
};

// {"error": {"message", "type", "param", "code"}} (null for empty param/code).
nlohmann::json error_json(const ApiError& e);

struct ApiContext {
  const Tokenizer* tok = nullptr;
  const ChatTemplate* chat_template = nullptr;  // null: the model has none (chat route -> 400)
  std::string model_name;
  int max_ctx = 0;
  SamplingParams defaults;  // generation_config.json of the model
  std::string bos, eos;     // special-token strings for the template
};

struct ParsedRequest {
  bool chat = false, stream = false, include_usage = false, echo = false;
  bool chat_logprobs = false;  // chat: logprobs true (top_logprobs in gen.logprobs)
  std::string prompt_text;     // completions: the prompt (for echo)
  GenRequest gen;
};

// Validate a /v1/completions (chat = false) or /v1/chat/completions body and build the
// generation request. Unknown fields are ignored; a field of the wrong type or out of range is
// a 400 naming it; a model name other than ours is a 404.
std::optional<ApiError> parse_generation(const nlohmann::json& body, bool chat, const ApiContext& ctx,
                                         ParsedRequest& out);

// The chat prompt text of `messages` (a non-empty array of {role, content}); content is a
// string, null, or an array of {"type": "text", "text": ...} parts.
std::optional<ApiError> render_messages(const nlohmann::json& messages, const ApiContext& ctx,
                                        std::string& text);

// JSON text of j; invalid UTF-8 in strings (partial tokens) is replaced, never an exception.
std::string dump(const nlohmann::json& j);

}  // namespace awq::server
