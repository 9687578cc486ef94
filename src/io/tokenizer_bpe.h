// The BPE model of HF `tokenizers`: vocab + ranked merges, applied to one pre-token.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace awq::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  struct Options {
    bool byte_fallback = false;  // unknown chars -> <0xNN> tokens
    bool ignore_merges = false;  // a word found whole in the vocab is one token
    bool fuse_unk = false;       // consecutive unknowns -> one unk
    std::string unk_token;       // "" = none (unknown chars are dropped, as in HF)
  };
  // merges: pairs of token strings, in rank order. `file` is used in error messages.
  static Expected<BpeModel> build(Vocab vocab,
                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                  Options opt, const std::string& file);

  // Append the ids of one pre-token (already byte-level mapped if the model is byte-level).
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view tok) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr if no such id
  size_t size() const { return id_to_token_.size(); }

 private:
  struct MergeTarget {
    int32_t rank, new_id;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  Vocab vocab_;
  std::vector<std::string> id_to_token_;  // by id ("" for holes)
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, MergeTarget> merges_;
  Options opt_;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];  // <0xNN> ids, -1 if absent
};

}  // namespace awq::tok
