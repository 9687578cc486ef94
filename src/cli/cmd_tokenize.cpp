// `awq tokenize MODEL_DIR FILE`: print the token ids of FILE's text (like llama-tokenize).
//   default: ids space-separated on one line; --json: {"ids": [...]}; --no-special: no BOS etc.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "core/mmap_file.h"
#include "io/tokenizer.h"

namespace {

struct TokenizeOpts {
  std::string model, file;
  bool json = false;
  bool no_special = false;
};

int run_tokenize(const TokenizeOpts& o) {
  auto tk = awq::Tokenizer::load(o.model);
  if (!tk) return awq::cli::fail(tk.error());
  auto text = awq::read_text_file(o.file);
  if (!text) return awq::cli::fail(text.error());
  const std::vector<int32_t> ids = tk->encode(*text, !o.no_special);
  std::string out = o.json ? "{\"ids\": [" : "";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += o.json ? ", " : " ";
    out += std::to_string(ids[i]);
  }
  out += o.json ? "]}\n" : "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

awq::cli::Register reg("tokenize", "Print the token ids of a text file", [](CLI::App& sub) {
  auto o = std::make_shared<TokenizeOpts>();
  sub.add_option("model", o->model, "model dir with tokenizer.json, or a tokenizer.json")
      ->required();
  sub.add_option("file", o->file, "text file to tokenize")->required();
  sub.add_flag("--json", o->json, "print {\"ids\": [...]}");
  sub.add_flag("--no-special", o->no_special, "do not add BOS/EOS (post-processor)");
  return [o]() -> int { return run_tokenize(*o); };
});

}  // namespace
