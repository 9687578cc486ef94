#include "quant/resume.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/mmap_file.h"

namespace awq {
namespace fs = std::filesystem;

namespace {

constexpr char kBlockMagic[8] = {'A', 'W', 'Q', 'R', 'B', 'L', 'K', '1'};

template <class T>
void put(std::string& s, const T& v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_bytes(std::string& s, const void* p, size_t n) {
  s.append(static_cast<const char*>(p), n);
}

// Bounds-checked reader over a block file; every failure names the file.
struct Reader {
  const uint8_t* p;
  size_t n, off = 0;
  std::string file;
  bool bad = false;
  template <class T>
  T get() {
    T v{};
    if (off + sizeof(T) > n) {
      bad = true;
      return v;
    }
    std::memcpy(&v, p + off, sizeof(T));
    off += sizeof(T);
    return v;
  }
  bool bytes(void* dst, size_t m) {
    if (bad || m > n - off) return !(bad = true);
    if (m) std::memcpy(dst, p + off, m);
    off += m;
    return true;
  }
};

}  // namespace

std::string fnv1a_hex(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", (unsigned long long)h);
  return b;
}

Expected<nlohmann::json> input_fingerprint(const std::string& model_path) {
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(model_path, ec)) {
    for (const auto& e : fs::directory_iterator(model_path, ec))
      if (e.is_regular_file()) {
        const std::string ext = e.path().extension().string();
        if (ext == ".safetensors" || ext == ".json" || ext == ".model" || ext == ".txt")
          files.push_back(e.path());
      }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(model_path);
  }
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : files) {
    AWQ_ASSIGN(MappedFile m, MappedFile::open(f.string()));
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) return make_error(f.string(), ": cannot stat");
    // Small files (config, tokenizer) hashed whole; weight files: size, mtime, first/last MiB.
    constexpr size_t kPart = size_t(1) << 20;
    nlohmann::json e = {{"size", (uint64_t)m.size()}};
    if (m.size() <= 4 * kPart) {
      e["hash"] = fnv1a_hex(m.data(), m.size());
    } else {
      e["hash"] = fnv1a_hex(m.data(), kPart) + fnv1a_hex(m.data() + m.size() - kPart, kPart);
      e["mtime_ns"] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    }
    j[f.filename().string()] = std::move(e);
  }
  return j;
}

std::string ResumeState::path(const char* kind, int layer) const {
  char b[64];
  std::snprintf(b, sizeof b, "%s-%05d.bin", kind, layer);
  return (fs::path(dir_) / b).string();
}

bool ResumeState::exists() const {
  std::error_code ec;
  return fs::exists(fs::path(dir_) / "state.json", ec);
}

void ResumeState::remove() const {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

Expected<int> ResumeState::load(const nlohmann::json& fp) const {
  const std::string sp = (fs::path(dir_) / "state.json").string();
  AWQ_ASSIGN(std::string text, read_text_file(sp));
  nlohmann::json st = nlohmann::json::parse(text, nullptr, false);
  if (st.is_discarded() || !st.is_object() || st.value("version", 0) != 1 ||
      !st.contains("fingerprint") || !st.contains("blocks_done") ||
      !st["blocks_done"].is_number_integer())
    return make_error(sp, ": not a resume state of this version (remove ", dir_,
                      " to start again)");
  const nlohmann::json& saved = st["fingerprint"];
  // Name the first difference: options first, then the input files, then calibration.
  for (const auto& [k, v] : fp.items()) {
    if (!saved.contains(k))
      return make_error("cannot resume from ", dir_, ": ", k, " missing in the saved state");
    if (saved[k] == v) continue;
    if (v.is_object() && saved[k].is_object()) {
      for (const auto& [f, fv] : v.items())
        if (!saved[k].contains(f) || saved[k][f] != fv)
          return make_error("cannot resume from ", dir_, ": ", k, " differs: ", f, " is ",
                            fv.dump(), ", the interrupted run had ",
                            saved[k].contains(f) ? saved[k][f].dump() : std::string("no such file"),
                            " (same arguments and the same input are required; remove ", dir_,
                            " to start again)");
      for (const auto& [f, fv] : saved[k].items())
        if (!v.contains(f))
          return make_error("cannot resume from ", dir_, ": ", k, " differs: ", f,
                            " was in the interrupted run's input and is not now");
    }
    return make_error("cannot resume from ", dir_, ": ", k, " differs: now ", v.dump(),
                      ", the interrupted run had ", saved[k].dump(),
                      " (resume with the same arguments, or remove ", dir_, " to start again)");
  }
  for (const auto& [k, v] : saved.items())
    if (!fp.contains(k))
      return make_error("cannot resume from ", dir_, ": the saved state has option ", k,
                        " unknown to this version");
  return st["blocks_done"].get<int>();
}

Status ResumeState::save_block(int layer, const BlockRecordedTensors& t,
                               const std::vector<float>& x, const nlohmann::json& fp) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return make_error(dir_, ": cannot create the resume state directory: ", ec.message());
  std::string s;
  put_bytes(s, kBlockMagic, 8);
  put(s, (uint32_t)t.items.size());
  for (const auto& it : t.items) {
    put(s, (uint8_t)(it.quantized ? 1 : 0));
    put(s, (uint32_t)it.name.size());
    put_bytes(s, it.name.data(), it.name.size());
    if (!it.quantized) {
      put(s, (uint32_t)it.shape.size());
      for (int64_t d : it.shape) put(s, d);
      put(s, (uint64_t)it.data.size());
      put_bytes(s, it.data.data(), it.data.size() * sizeof(float));
    } else {
      const QuantizedLinear& q = it.ql;
      put(s, (int32_t)q.N), put(s, (int32_t)q.K), put(s, (int32_t)q.group_size);
      put(s, (int32_t)q.w_bit), put(s, (uint8_t)q.zero_point);
      put(s, (uint64_t)q.q.size()), put_bytes(s, q.q.data(), q.q.size());
      put(s, (uint64_t)q.zeros.size()), put_bytes(s, q.zeros.data(), q.zeros.size());
      put(s, (uint64_t)q.scales.size());
      put_bytes(s, q.scales.data(), q.scales.size() * sizeof(uint16_t));
      put(s, (uint64_t)it.bias.size());
      put_bytes(s, it.bias.data(), it.bias.size() * sizeof(float));
    }
  }
  const std::string rep = t.report.dump();
  put(s, (uint64_t)rep.size());
  put_bytes(s, rep.data(), rep.size());
  const std::string sum = fnv1a_hex(s.data(), s.size());
  put_bytes(s, sum.data(), sum.size());
  AWQ_TRY(write_file_atomic(path("block", layer), s));
  if (!x.empty())
    AWQ_TRY(write_file_atomic(path("x", layer + 1), x.data(), x.size() * sizeof(float)));
  nlohmann::json st = {{"version", 1}, {"fingerprint", fp}, {"blocks_done", layer + 1}};
  AWQ_TRY(write_file_atomic((fs::path(dir_) / "state.json").string(), st.dump(1) + "\n"));
  fs::remove(path("x", layer), ec);  // superseded
  return Status::Ok();
}

Expected<BlockRecordedTensors> ResumeState::read_block(int layer) const {
  const std::string f = path("block", layer);
  AWQ_ASSIGN(MappedFile m, MappedFile::open(f));
  const auto corrupt = [&](const char* what) {
    return make_error(f, ": corrupt resume block (", what, "); remove ", dir_, " to start again");
  };
  if (m.size() < 8 + 16 || std::memcmp(m.data(), kBlockMagic, 8) != 0) return corrupt("magic");
  if (fnv1a_hex(m.data(), m.size() - 16) !=
      std::string(reinterpret_cast<const char*>(m.data()) + m.size() - 16, 16))
    return corrupt("checksum");
  Reader r{m.data(), m.size() - 16, 8, f};
  BlockRecordedTensors t;
  const uint32_t n = r.get<uint32_t>();
  for (uint32_t i = 0; i < n && !r.bad; ++i) {
    BlockRecordedTensors::Item it;
    it.quantized = r.get<uint8_t>() != 0;
    it.name.resize(r.get<uint32_t>() & 0xffff);
    r.bytes(it.name.data(), it.name.size());
    if (!it.quantized) {
      const uint32_t nd = r.get<uint32_t>();
      if (nd > 8) return corrupt("rank");
      for (uint32_t d = 0; d < nd; ++d) it.shape.push_back(r.get<int64_t>());
      const uint64_t ne = r.get<uint64_t>();
      if (ne > r.n / 4) return corrupt("size");
      it.data.resize(ne);
      r.bytes(it.data.data(), ne * 4);
    } else {
      QuantizedLinear& q = it.ql;
      q.N = r.get<int32_t>(), q.K = r.get<int32_t>(), q.group_size = r.get<int32_t>();
      q.w_bit = r.get<int32_t>(), q.zero_point = r.get<uint8_t>() != 0;
      auto vec = [&](auto& v) {
        const uint64_t ne = r.get<uint64_t>();
        if (ne > r.n) return !(r.bad = true);
        v.resize(ne);
        return r.bytes(v.data(), ne * sizeof(v[0]));
      };
      vec(q.q), vec(q.zeros), vec(q.scales), vec(it.bias);
      if ((size_t)q.N * q.K != q.q.size()) return corrupt("codes");
    }
    t.items.push_back(std::move(it));
  }
  std::string rep(r.get<uint64_t>() & 0xffffffffu, '\0');
  r.bytes(rep.data(), rep.size());
  if (r.bad || r.off != r.n) return corrupt("length");
  t.report = nlohmann::json::parse(rep, nullptr, false);
  if (t.report.is_discarded()) return corrupt("report");
  return t;
}

Status ResumeState::read_x(int layer, std::vector<float>& x) const {
  const std::string f = path("x", layer);
  AWQ_ASSIGN(MappedFile m, MappedFile::open(f));
  if (m.size() != x.size() * sizeof(float))
    return make_error(f, ": ", m.size(), " bytes, expected ", x.size() * sizeof(float),
                      " (corrupt resume state; remove ", dir_, " to start again)");
  std::memcpy(x.data(), m.data(), m.size());
  return Status::Ok();
}

}  // namespace awq
