#include "quant/calibration.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/mmap_file.h"

namespace awq {

extern "C" const unsigned char awq_default_calib_jsonl[];
extern "C" const unsigned long awq_default_calib_jsonl_size;

const std::string& default_calibration_jsonl() {
  static const std::string s(reinterpret_cast<const char*>(awq_default_calib_jsonl), awq_default_calib_jsonl_size);
  return s;
}

static Expected<std::vector<std::string>> parse_jsonl(const std::string& text,
                                                      const std::string& src) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      return make_error(src, ":", lineno, ": malformed JSON: ", e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      return make_error(src, ":", lineno, ": expected an object with a string field \"text\"");
    out.push_back(j["text"].get<std::string>());
  }
  return out;
}

static std::vector<std::string> split_paragraphs(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(text);
  std::string line;
  auto flush = [&] {
    if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(cur);
    cur.clear();
  };
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      flush();
    } else {
      cur += line;
      cur += '\n';
    }
  }
  flush();
  return out;
}

Expected<std::vector<std::string>> load_calibration_texts(const std::string& path) {
  if (path.empty()) return parse_jsonl(default_calibration_jsonl(), "<embedded default corpus>");
  AWQ_ASSIGN(std::string text, read_text_file(path));
  if (path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl") return parse_jsonl(text, path);
  return split_paragraphs(text);
}

static std::string strip(const std::string& s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

Expected<CalibBlocks> make_calibration_blocks(const std::vector<std::string>& texts,
                                              const Tokenizer& tok, int n_samples, int seqlen) {
  if (seqlen <= 0 || n_samples <= 0)
    return make_error("calibration: --seqlen and --n-samples must be positive");
  std::vector<int32_t> all;
  int used = 0;
  for (const auto& t : texts) {
    if (used == n_samples) break;
    const std::string line = strip(t);
    std::vector<int32_t> ids = tok.encode(line, true);
    if (ids.empty() || (int)ids.size() > seqlen) continue;
    all.insert(all.end(), ids.begin(), ids.end());
    ++used;
  }
  CalibBlocks b;
  b.seqlen = seqlen;
  b.samples_used = used;
  b.n_blocks = (int)(all.size() / (size_t)seqlen);
  if (b.n_blocks == 0)
    return make_error("calibration text too short: ", used, " usable samples gave ", all.size(),
                      " tokens, need at least one block of ", seqlen,
                      " tokens (samples longer than --seqlen are skipped)");
  all.resize((size_t)b.n_blocks * seqlen);
  b.tokens = std::move(all);
  return b;
}

}  // namespace awq
