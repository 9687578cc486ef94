// Resumable `awq quantize` (issue 15): after every completed decoder block the pipeline saves
// what it handed the checkpoint writer for that block and the next block's input activations in
// OUT_DIR.resume/, so a run that was interrupted (SIGINT/SIGTERM) or killed (SIGKILL, power loss)
// continues from its last completed block when started again with the same arguments and
// --resume. The finished checkpoint is byte-identical to an uninterrupted run's: the saved
// blocks are replayed into a fresh writer in the same order, and block k+1 starts from the
// exact activations block k produced.
//
// OUT_DIR.resume/
//   state.json        {"version": 1, "fingerprint": {...}, "blocks_done": k}; written last
//                     (atomically) after a block, so it never names files not yet on disk
//   block-NNNNN.bin   the tensors block NNNNN gave the writer, in order (format below)
//   x-NNNNN.bin       fp32 input activations of block NNNNN ([n_blocks*seqlen][hidden]); only
//                     the one for block blocks_done is kept
// The fingerprint holds every option that changes the output and the identity of the input
// (small files (config, tokenizer) by a hash of their bytes; each weight file over 4 MiB by its
// size, mtime and a hash of its first and last MiB;
// the calibration token ids); resuming with any of them different is refused, naming it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "quant/group_quant.h"

namespace awq {

// One block's writer calls, recorded for the resume state and replayed on resume.
struct BlockRecordedTensors {
  struct Item {
    bool quantized = false;
    std::string name;             // tensor name (fp16) or linear prefix (quantized)
    std::vector<int64_t> shape;   // fp16 tensors
    std::vector<float> data;      // fp16 tensors: the fp32 values given to add_fp16
    QuantizedLinear ql;           // quantized
    std::vector<float> bias;      // quantized: empty = no bias
  };
  std::vector<Item> items;
  nlohmann::json report;          // the block's GroupReport / ClipReport entries
};

// FNV-1a 64 of bytes (hex string), for fingerprints.
std::string fnv1a_hex(const void* data, size_t n, uint64_t seed = 0xcbf29ce484222325ull);

// Identity of a model input (HF directory or .gguf file): see the header comment.
Expected<nlohmann::json> input_fingerprint(const std::string& model_path);

class ResumeState {
 public:
  // dir: OUT_DIR.resume. Nothing is created until the first save.
  explicit ResumeState(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  bool exists() const;
  // Reads state.json and checks the fingerprint: an error naming the first differing key
  // ("--group-size: saved 64, now 128"). Returns blocks_done.
  Expected<int> load(const nlohmann::json& fingerprint) const;
  Expected<BlockRecordedTensors> read_block(int layer) const;
  Status read_x(int layer, std::vector<float>& x) const;  // x must have the saved size
  // After block `layer` completed: writes its tensors, the input of block layer+1 (x may be
  // empty: RTN), then state.json {blocks_done: layer+1}; then removes what is no longer needed.
  Status save_block(int layer, const BlockRecordedTensors& t, const std::vector<float>& x,
                    const nlohmann::json& fingerprint);
  void remove() const;  // the whole directory

 private:
  std::string path(const char* kind, int layer) const;
  std::string dir_;
};

}  // namespace awq
