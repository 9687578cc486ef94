#include "runtime/generate.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace awq {

size_t utf8_complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for the start of the last character.
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = (unsigned char)s[n - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back < len ? n - back : n;
  }
  return n;  // only continuation bytes (invalid): release them
}

TextStream::TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string TextStream::push(std::string_view bytes) {
  if (stopped_) return "";
  pending_.append(bytes);
  // A complete stop string ends the stream.
  size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    all_ += out;
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  size_t ready = utf8_complete_prefix(std::string_view(pending_).substr(0, pending_.size() - hold));
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  all_ += out;
  return out;
}

std::string TextStream::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  pending_.clear();
  all_ += out;
  return out;
}

Expected<SamplingParams> load_generation_defaults(const std::string& model_dir) {
  namespace fs = std::filesystem;
  SamplingParams p;  // greedy
  const fs::path path = fs::path(model_dir) / "generation_config.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return p;
  std::ifstream f(path);
  if (!f) return make_error(path.string(), ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(path.string(), ": not a JSON object");
  auto num = [&](const char* key, auto& out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return Status::Ok();
    if (!it->is_number())
      return make_error(path.string(), ": field \"", key, "\" must be a number, got ", it->type_name());
    out = it->get<std::remove_reference_t<decltype(out)>>();
    return Status::Ok();
  };
  float temperature = 1.0f;
  bool has_temperature = j.contains("temperature") && !j["temperature"].is_null();
  AWQ_TRY(num("temperature", temperature));
  AWQ_TRY(num("top_k", p.top_k));
  AWQ_TRY(num("top_p", p.top_p));
  AWQ_TRY(num("min_p", p.min_p));
  AWQ_TRY(num("repetition_penalty", p.repetition_penalty));
  bool do_sample = false;
  if (auto it = j.find("do_sample"); it != j.end()) {
    if (!it->is_boolean())
      return make_error(path.string(), ": field \"do_sample\" must be true or false");
    do_sample = it->get<bool>();
  }
  // transformers samples only with do_sample; a temperature alone is how many models ship
  // their recommended setting, so honour it too.
  if (do_sample || has_temperature) p.temperature = temperature;
  if (!do_sample && !has_temperature) {
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
  }
  return p;
}

}  // namespace awq
