#include "io/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

namespace awq::tok {

Expected<BpeModel> BpeModel::build(Vocab vocab,
                                   const std::vector<std::pair<std::string, std::string>>& merges,
                                   Options opt, const std::string& file) {
  BpeModel m;
  int32_t max_id = -1;
  for (auto& [tok, id] : vocab) {
    if (id < 0)
      return make_error(file, ": model.vocab[\"", tok, "\"]: id ", id, " is negative");
    max_id = std::max(max_id, id);
  }
  m.id_to_token_.resize(size_t(max_id + 1));
  m.has_id_.assign(size_t(max_id + 1), false);
  for (auto& [tok, id] : vocab) {
    m.id_to_token_[size_t(id)] = tok;
    m.has_id_[size_t(id)] = true;
  }
  m.merges_.reserve(merges.size());
  std::string joined;
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    auto ia = vocab.find(a), ib = vocab.find(b);
    joined = a + b;
    auto ij = vocab.find(joined);
    if (ia == vocab.end() || ib == vocab.end() || ij == vocab.end()) {
      const std::string& missing = ia == vocab.end() ? a : ib == vocab.end() ? b : joined;
      return make_error(file, ": model.merges[", r, "] (\"", a, "\", \"", b, "\"): token \"",
                        missing, "\" is not in model.vocab");
    }
    // Like HF, a later duplicate of a pair does not override the first (lower) rank.
    m.merges_.emplace(key(ia->second, ib->second), MergeTarget{int32_t(r), ij->second});
  }
  m.opt_ = std::move(opt);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab.find(std::string_view(name));
    m.byte_ids_[b] = it == vocab.end() ? -1 : it->second;
  }
  if (!m.opt_.unk_token.empty()) {
    auto it = vocab.find(m.opt_.unk_token);
    m.unk_id_ = it == vocab.end() ? -1 : it->second;
  }
  m.vocab_ = std::move(vocab);
  return m;
}

int32_t BpeModel::token_to_id(std::string_view tok) const {
  auto it = vocab_.find(tok);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !has_id_[size_t(id)]) return nullptr;
  return &id_to_token_[size_t(id)];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Symbols as a doubly linked list over a vector; a merged-away symbol gets len 0.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t len;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  auto add = [&](int32_t id, uint32_t len) {
    const int32_t n = int32_t(sym.size());
    sym.push_back({id, n - 1, n + 1, len});
  };
  // Initial symbols: one per character (byte fallback / unk for chars not in the vocab).
  int32_t pending_unk = -1;
  uint32_t pending_unk_len = 0;
  for (size_t i = 0; i < word.size();) {
    size_t n = 1;
    while (i + n < word.size() && (static_cast<unsigned char>(word[i + n]) & 0xC0) == 0x80) ++n;
    const std::string_view ch = word.substr(i, n);
    i += n;
    auto it = vocab_.find(ch);
    if (it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk, pending_unk_len), pending_unk = -1;
      add(it->second, uint32_t(n));
      continue;
    }
    if (opt_.byte_fallback) {
      bool all = true;
      for (unsigned char c : ch) all = all && byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : ch) add(byte_ids_[c], 1);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk >= 0 && opt_.fuse_unk) {
        pending_unk_len += uint32_t(n);
      } else {
        if (pending_unk >= 0) add(pending_unk, pending_unk_len);
        pending_unk = unk_id_, pending_unk_len = uint32_t(n);
      }
    }
  }
  if (pending_unk >= 0) add(pending_unk, pending_unk_len);
  if (sym.empty()) return;
  sym.back().next = -1;

  // Merge the lowest-rank pair first; ties go to the leftmost position (HF Word::merge_all).
  struct Cand {
    int32_t rank, pos, new_id;
  };
  auto worse = [](const Cand& x, const Cand& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::vector<Cand> heap_storage;
  heap_storage.reserve(sym.size() * 2);
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> queue(worse,
                                                                      std::move(heap_storage));
  for (size_t p = 0; p + 1 < sym.size(); ++p) {
    auto it = merges_.find(key(sym[p].id, sym[p + 1].id));
    if (it != merges_.end()) queue.push({it->second.rank, int32_t(p), it->second.new_id});
  }
  while (!queue.empty()) {
    const Cand top = queue.top();
    queue.pop();
    Symbol& cur = sym[size_t(top.pos)];
    if (cur.len == 0 || cur.next < 0) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = sym[size_t(next_pos)];
    auto it = merges_.find(key(cur.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    sym[size_t(next_pos)].len = 0;
    if (right.next >= 0) sym[size_t(right.next)].prev = top.pos;
    if (cur.prev >= 0) {
      auto m = merges_.find(key(sym[size_t(cur.prev)].id, cur.id));
      if (m != merges_.end()) queue.push({m->second.rank, cur.prev, m->second.new_id});
    }
    if (cur.next >= 0) {
      auto m = merges_.find(key(cur.id, sym[size_t(cur.next)].id));
      if (m != merges_.end()) queue.push({m->second.rank, top.pos, m->second.new_id});
    }
  }
  for (const Symbol& s : sym)
    if (s.len) out.push_back(s.id);
}

}  // namespace awq::tok
