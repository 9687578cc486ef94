// Calibration samples (spec §2): texts -> token blocks [n_blocks][seqlen].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/tokenizer.h"

namespace awq {

// Read calibration texts: a .jsonl file (one object per line with a "text" field) or plain
// text (samples separated by blank lines). Empty path: the embedded default corpus.
Expected<std::vector<std::string>> load_calibration_texts(const std::string& path);

// The embedded default corpus (data/calib/default.jsonl compiled into the binary).
const std::string& default_calibration_jsonl();

struct CalibBlocks {
  int n_blocks = 0, seqlen = 0;
  std::vector<int32_t> tokens;  // [n_blocks][seqlen]
  int samples_used = 0;
};

// AutoAWQ's sampling: each text strip()ped and encoded with special tokens; samples longer than
// seqlen or empty are skipped; the first n_samples kept samples are concatenated and cut into
// floor(n / seqlen) blocks. Error when not even one block results.
Expected<CalibBlocks> make_calibration_blocks(const std::vector<std::string>& texts,
                                              const Tokenizer& tok, int n_samples, int seqlen);

}  // namespace awq
