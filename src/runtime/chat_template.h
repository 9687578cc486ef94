// Chat templates: an interpreter for the subset of Jinja2 that Hugging Face chat templates of
// the supported models use (SmolLM2/ChatML, Llama-3, Qwen2, Mistral/Llama-2 [INST], Zephyr).
// Rendering follows transformers' apply_chat_template: trim_blocks and lstrip_blocks on.
//
// Supported
//   tags      {{ expr }}  {% stmt %}  {# comment #}, '-' whitespace control on either side
//   stmts     for x in e / for a, b in e (+ else), if / elif / else, set name = e
//   loop      loop.index, loop.index0, loop.revindex, loop.revindex0, loop.first, loop.last,
//             loop.length
//   exprs     literals (strings with Python escapes, ints, floats, true/false/none, lists,
//             dicts), names, a.b, a[e], a[i:j], calls, + - * / // % (numbers), + (strings,
//             lists), ~ (concat), == != < <= > >=, in / not in, not, and, or (Python value
//             semantics), a if c else b, is [not] defined/undefined/none/string/number/
//             integer/mapping/sequence/iterable/boolean/true/false/even/odd
//   filters   trim length count first last upper lower default(d) string join(sep) int
//             capitalize
//   methods   str: strip lstrip rstrip startswith endswith upper lower split;
//             dict: items keys values get
//   globals   raise_exception(msg) (a render error carrying msg), range(n)
// Anything else (macros, blocks, filters not listed, ...) is a parse or render error that names
// the construct.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace awq {

namespace chat_detail {
struct Program;
}

struct ChatMessage {
  std::string role, content;
};

class ChatTemplate {
 public:
  // Errors name the construct and the byte offset in the template.
  static Expected<ChatTemplate> parse(std::string_view source);

  // Render with an arbitrary JSON context object (messages, add_generation_prompt, ...).
  Expected<std::string> render(const nlohmann::json& context) const;
  // The usual context: messages, add_generation_prompt, bos_token, eos_token.
  Expected<std::string> apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                              const std::string& bos_token, const std::string& eos_token) const;

 private:
  std::shared_ptr<const chat_detail::Program> prog_;
};

}  // namespace awq
