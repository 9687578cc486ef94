// awq logits MODEL (-p TEXT | --ids 1,2,3) -o OUT.npy: the forward pass of one sequence, all
// logit rows [T, vocab] as a float32 .npy file (the model loaded as `awq generate` loads it,
// exact lm_head as `awq ppl` computes it). The reference the Python Model.logits is tested against.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/gen_common.h"
#include "core/mmap_file.h"
#include "core/threads.h"
#include "model/forward.h"

namespace awq::cli {
namespace {

struct LogitsArgs {
  std::string model, prompt, ids, out;
  int threads = 0;
  bool no_w4 = false;
};

Expected<std::vector<int32_t>> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string part = s.substr(i, j - i);
    try {
      size_t used = 0;
      const long v = std::stol(part, &used);
      if (used != part.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(part);
      ids.push_back((int32_t)v);
    } catch (const std::exception&) {
      return make_error("--ids: '", part, "' is not a token id (expected comma-separated integers)");
    }
    i = j + 1;
  }
  return ids;
}

// .npy v1.0: magic, header length, a Python dict literal padded to a multiple of 64 bytes.
Status write_npy(const std::string& path, const std::vector<float>& data, size_t rows, size_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string blob("\x93NUMPY\x01\x00", 8);
  blob.push_back((char)(header.size() & 0xff));
  blob.push_back((char)(header.size() >> 8));
  blob += header;
  blob.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  return write_file_atomic(path, blob);
}

int run_logits(const LogitsArgs& a) {
  set_num_threads(a.threads);
  if (a.prompt.empty() == a.ids.empty()) return fail("give exactly one of --prompt and --ids");
  std::vector<int32_t> ids;
  if (!a.ids.empty()) {
    auto p = parse_ids(a.ids);
    if (!p) return fail(p.error());
    ids = std::move(*p);
  } else {
    auto tok = Tokenizer::load(a.model);
    if (!tok) return fail(tok.error());
    ids = tok->encode(a.prompt, true);
  }
  if (ids.empty()) return fail("no tokens to run");
  auto model = load_for_inference(a.model, a.no_w4);
  if (!model) return fail(model.error());
  const int T = (int)ids.size(), V = model->cfg.vocab, H = model->cfg.hidden;
  for (int32_t t : ids)
    if (t >= V)
      return fail("token id " + std::to_string(t) + " is outside the model vocabulary (" +
                  std::to_string(V) + ")");
  std::vector<float> hidden((size_t)T * H), logits((size_t)T * V);
  forward_hidden(*model, ids.data(), 1, T, hidden.data());
  lm_head_forward(*model, hidden.data(), T, logits.data());
  if (auto s = write_npy(a.out, logits, T, V); !s) return fail(s.error());
  std::printf("wrote %s: logits [%d, %d] (%s weights)\n", a.out.c_str(), T, V, weights_kind(*model));
  return 0;
}

Register reg("logits", "forward pass of one sequence: all logit rows to a .npy file",
             [](CLI::App& sub) {
  auto a = std::make_shared<LogitsArgs>();
  sub.add_option("model", a->model, "model directory (HF or AWQ)")->required();
  sub.add_option("-p,--prompt", a->prompt, "text (tokenized with special tokens, as generate does)");
  sub.add_option("--ids", a->ids, "comma-separated token ids instead of a prompt");
  sub.add_option("-o,--out", a->out, "output .npy file (float32 [tokens, vocab])")->required();
  sub.add_option("--threads,-t", a->threads, "threads (0 = all)");
  sub.add_flag("--no-w4", a->no_w4, "AWQ checkpoints: dequantize to fp32 instead of W4 kernels");
  return [a]() { return run_logits(*a); };
});

}  // namespace
}  // namespace awq::cli
